"""The engine under the oldest supported (3.6) and the newest interpreter: plan, freeze cycle, scripts.

The worker side, the guardian child (same interpreter, sys.executable) and the script runner all run
under the interpreter being tested.
"""

import json
import os
import subprocess

import pytest

from harness.interpreters import interpreter_or_skip, runtime_interpreters
from harness.loopfs import skip_reason
from harness.trusteddir import TrustedDir

HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSION = os.path.join(os.path.dirname(os.path.dirname(HERE)), "extension")
INTERPRETERS = runtime_interpreters()

CYCLE = r"""
import json, os, sys
from vmsnapshot.mounts import plan_from_mountinfo
from vmsnapshot.guardian_client import GuardianClient
from vmsnapshot.syncfs import syncfs_all
from vmsnapshot import script_config, scripts

mounts, script_dir = sys.argv[1:-1], sys.argv[-1]
out = {"python": "%d.%d" % sys.version_info[:2]}
plan = plan_from_mountinfo(include=mounts)
out["plan"] = plan.mountpoints
if mounts:
    assert sorted(plan.mountpoints) == sorted(mounts), plan.mountpoints
    syncfs_all(plan.mountpoints)
    with GuardianClient(plan.mountpoints, hard_deadline_s=10, lock_path=None) as g:
        g.start()
        r = g.freeze()
        t = g.thaw()
    out["freeze"], out["thaw"] = r.to_dict(), t.to_dict()
path = os.path.join(script_dir, "pre.sh")
with open(path, "w") as f:
    f.write("#!/bin/sh\necho hello $1\n")
os.chmod(path, 0o700)
cfg = os.path.join(script_dir, "cfg.json")
with open(cfg, "w") as f:
    json.dump({"preScriptLocation": path, "preScriptParams": ["there"]}, f)
os.chmod(cfg, 0o600)
sp = script_config.load_script_plan(config_path=cfg, hook_dir=None, owner_uid=os.geteuid())
pre = scripts.run_pre(sp)
out["script"] = [pre.ok, pre.scripts[0].output_tail]
print(json.dumps(out))
"""


@pytest.fixture(params=[i[0] for i in INTERPRETERS])
def interpreter(request):
    return interpreter_or_skip(request.param)


def _run(interpreter, mounts, tmp_path):
    env = dict(os.environ, PYTHONPATH=EXTENSION, PYTHONDONTWRITEBYTECODE="1")
    with TrustedDir() as script_dir:  # the runner refuses scripts under a sticky /tmp
        p = subprocess.run(
            [interpreter, "-B", "-c", CYCLE] + list(mounts) + [script_dir],
            cwd="/",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout.decode())


def test_plan_and_scripts_without_freezing(interpreter, tmp_path):
    out = _run(interpreter, [], tmp_path)
    assert out["script"] == [True, "hello there\n"]


@pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
def test_freeze_cycle(interpreter, freeze_safety, tmp_path):
    mounts = freeze_safety.mountpoints
    out = _run(interpreter, mounts, tmp_path)
    assert out["plan"] == list(reversed(mounts)) or sorted(out["plan"]) == sorted(mounts)
    assert out["freeze"]["ok"] and sorted(out["freeze"]["frozen"]) == sorted(mounts)
    assert out["thaw"]["ok"] and out["thaw"]["reason"] == "requested"
    assert out["script"] == [True, "hello there\n"]
