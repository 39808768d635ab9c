"""`vmsnapkit templates ...` is the same tool as `python -m vmsnapkit.arm ...`."""

import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def kit(*args):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "deploy"))
    return subprocess.run(
        [sys.executable, "-m", "vmsnapkit", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_templates_subcommand_checks_and_validates_the_committed_templates():
    assert kit("templates", "check").returncode == 0
    files = sorted(glob.glob(os.path.join(ROOT, "arm-templates", "*", "azuredeploy*.json")))
    assert len(files) >= 6
    proc = kit("templates", "validate", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_templates_subcommand_rejects_a_broken_template(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",'
        ' "contentVersion": 5, "resources": []}'
    )
    proc = kit("templates", "validate", str(bad))
    assert proc.returncode != 0 and "contentVersion" in proc.stdout + proc.stderr
