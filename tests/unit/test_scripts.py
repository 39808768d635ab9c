"""vmsnapshot.scripts: the pre/post phases (the full script matrix is in tests/engine/test_scripts.py)."""

import json
import os
import time

import pytest
from vmsnapshot import codes, scripts
from vmsnapshot.script_config import ScriptPlan, load_script_plan

from harness.procs import Cancelled, cancel_after
from harness.trusteddir import TrustedDir

UID = os.geteuid()


@pytest.fixture
def trusted():
    with TrustedDir() as path:
        yield path


def hooks(directory, *names, body="echo $1 >> %(log)s\n"):
    d = os.path.join(directory, "hooks.d")
    os.mkdir(d, 0o755)
    log = os.path.join(directory, "log")
    for name in names:
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\necho %s >> %s\n" % (name, log) + body % {"log": log})
        os.chmod(path, 0o700)
    return d, log


def plan_of(directory, hook_dir):
    return load_script_plan(
        config_path=os.path.join(directory, "none.json"), hook_dir=hook_dir, owner_uid=UID, config_required=False
    )


@pytest.mark.parametrize(
    "pre_ok, fs_freeze, cont, decision",
    [
        (True, True, True, (True, True)),
        (True, False, True, (True, False)),
        (False, True, True, (True, True)),
        (False, True, False, (False, False)),
        (False, False, True, (False, False)),
    ],
)
def test_snapshot_decision(pre_ok, fs_freeze, cont, decision):
    plan = ScriptPlan(fs_freeze_enabled=fs_freeze, continue_on_failure=cont)
    pre = scripts.PhaseResult("pre")
    if not pre_ok:
        pre.fail(300, "x")
    assert scripts.snapshot_decision(plan, pre) == decision


def test_the_first_failure_gives_the_code():
    phase = scripts.PhaseResult("post")
    phase.fail(301, "first")
    phase.fail(309, "second")
    assert (phase.ok, phase.code, phase.message) == (False, 301, "first")


def test_an_unusable_plan_fails_pre_with_its_code_and_runs_no_post():
    plan = ScriptPlan(error_code=317, message="unsafe")
    pre = scripts.run_pre(plan)
    assert (pre.ok, pre.code, pre.message, pre.ran) == (False, 317, "unsafe", False)
    assert scripts.run_post(plan).to_dict() == {
        "phase": "post",
        "ok": True,
        "code": None,
        "message": "",
        "ran": False,
        "duration_ms": 0.0,
        "scripts": [],
    }


def test_post_without_pre_runs_every_unit_in_reverse(trusted):
    d, log = hooks(trusted, "10-a", "20-b")
    post = scripts.run_post(plan_of(trusted, d))
    assert post.ok and [s.name for s in post.scripts] == ["hook:20-b", "hook:10-a"]
    assert open(log).read().split() == ["20-b", "thaw", "10-a", "thaw"]


def test_a_cancel_during_a_pre_script_kills_it_and_its_unit_is_undone(trusted):
    d, log = hooks(
        trusted,
        "10-a",
        "20-slow",
        body='echo $1 >> %(log)s\ncase "$VMSNAPSHOT_SCRIPT" in *slow) [ $1 = thaw ] || sleep 300;; esac\n',
    )
    plan = plan_of(trusted, d)
    t0 = time.monotonic()
    with pytest.raises(Cancelled), cancel_after(1.0):
        scripts.run_pre(plan)
    assert time.monotonic() - t0 < 5
    assert [u.name for u in plan.entered] == ["hook:10-a", "hook:20-slow"]
    post = scripts.run_post(plan)
    assert post.ok and [s.name for s in post.scripts] == ["hook:20-slow", "hook:10-a"]
    assert open(log).read().split() == ["10-a", "freeze", "20-slow", "freeze", "20-slow", "thaw", "10-a", "thaw"]


def test_script_results_describe_each_attempt(trusted):
    cfg = os.path.join(trusted, "cfg.json")
    with open(cfg, "w") as f:
        json.dump({"preScriptLocation": "/bin/false", "preScriptNoOfRetries": 1}, f)
    os.chmod(cfg, 0o600)
    plan = load_script_plan(config_path=cfg, hook_dir=None)  # /bin/false: root's, as a real script would be
    if UID != 0:
        pytest.skip("a root-owned script is refused for owner_uid %d" % UID)
    pre = scripts.run_pre(plan)
    (s,) = pre.scripts
    assert (pre.code, s.code, s.attempts, s.exit_code, s.ok) == (codes.PRE_SCRIPT_FAILED, 300, 2, 1, False)
    assert set(s.to_dict()) == {
        "name",
        "path",
        "args",
        "phase",
        "origin",
        "ok",
        "code",
        "message",
        "exit_code",
        "attempts",
        "duration_ms",
        "timed_out",
        "output_tail",
        "output_bytes",
    }
