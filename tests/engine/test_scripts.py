"""Pre/post script matrix with real scripts and real processes (nothing is frozen here).

Ownership checks use owner_uid = our own uid, so the matrix also runs unprivileged; the wrong-owner
cases need root (chown to nobody) and skip otherwise.
"""

import json
import os
import pathlib
import stat
import time

import pytest
from vmsnapshot import script_config, subp
from vmsnapshot.script_config import load_script_plan
from vmsnapshot.scripts import run_post, run_pre, snapshot_decision

from harness.procs import alive
from harness.trusteddir import TrustedDir

UID = os.geteuid()
NOBODY = 65534
needs_root = pytest.mark.skipif(UID != 0, reason="chown to another user needs root")


@pytest.fixture
def trusted():
    """A directory whose chain up to / the runner trusts (pytest's tmp_path is under a sticky /tmp)."""
    with TrustedDir() as path:
        yield pathlib.Path(path)


@pytest.fixture
def sdir(trusted):
    d = trusted / "scripts"
    d.mkdir(mode=0o755)
    os.chmod(str(d), 0o755)
    return d


def script(directory, name, body, mode=0o700, shebang="#!/bin/bash\n"):
    path = directory / name
    path.write_text(shebang + body)
    os.chmod(str(path), mode)
    return str(path)


def config(directory, mode=0o600, **fields):
    path = directory / "VMSnapshotScriptPluginConfig.json"
    path.write_text(json.dumps(fields))
    os.chmod(str(path), mode)
    return str(path)


def plan_for(cfg, hook_dir=None):
    return load_script_plan(config_path=cfg, hook_dir=hook_dir, owner_uid=UID)


def test_success_with_params_pre_and_post(sdir):
    log = sdir / "log"
    pre = script(sdir, "pre.sh", 'echo "pre:$1:$2" | tee -a %s\n' % log)
    post = script(sdir, "post.sh", 'echo "post:$1" >> %s\n' % log)
    plan = plan_for(
        config(sdir, preScriptLocation=pre, postScriptLocation=post, preScriptParams=["a b", 7], postScriptParams=["z"])
    )
    assert plan.enabled and plan.error_code is None
    assert plan.fs_freeze_enabled and plan.continue_on_failure
    r = run_pre(plan)
    assert (r.ok, r.code, r.ran) == (True, None, True)
    s = r.scripts[0]
    assert (s.exit_code, s.attempts, s.code) == (0, 1, None)
    assert s.output_tail == "pre:a b:7\n" and s.duration_ms > 0
    p = run_post(plan)
    assert p.ok and p.ran
    assert log.read_text() == "pre:a b:7\npost:z\n"
    assert snapshot_decision(plan, r) == (True, True)


def test_nonzero_exit_codes_300_and_301(sdir):
    pre = script(sdir, "pre.sh", "echo failing >&2; exit 3\n")
    post = script(sdir, "post.sh", "exit 4\n")
    plan = plan_for(config(sdir, preScriptLocation=pre, postScriptLocation=post))
    r = run_pre(plan)
    assert (r.ok, r.code) == (False, 300)
    assert r.scripts[0].exit_code == 3 and r.scripts[0].output_tail == "failing\n"
    assert "exited with status 3" in r.message
    p = run_post(plan)
    assert (p.ok, p.code, p.scripts[0].exit_code) == (False, 301, 4)


def test_timeout_kills_the_whole_process_group_308(sdir):
    pids = sdir / "pids"
    # a child that ignores SIGTERM (so SIGKILL is needed) and the script itself sleeping
    pre = script(
        sdir,
        "pre.sh",
        "bash -c 'trap \"\" TERM; echo $$ >> %s; exec sleep 300' &\necho $$ >> %s\nsleep 300\n" % (pids, pids),
    )
    plan = plan_for(config(sdir, preScriptLocation=pre, timeoutInSeconds=0.5))
    t0 = time.monotonic()
    r = run_pre(plan)
    took = time.monotonic() - t0
    assert (r.ok, r.code) == (False, 308)
    s = r.scripts[0]
    assert s.timed_out and "timed out" in s.message
    assert took < 0.5 + subp.KILL_GRACE_S + 1.5
    recorded = [int(x) for x in pids.read_text().split()]
    assert len(recorded) == 2
    deadline = time.monotonic() + 2
    while any(alive(p) for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(alive(p) for p in recorded), "script process group survived the timeout"


def test_post_timeout_is_309(sdir):
    post = script(sdir, "post.sh", "sleep 30\n")
    plan = plan_for(config(sdir, postScriptLocation=post, timeoutInSeconds=0.3))
    assert run_pre(plan).ok
    assert run_post(plan).code == 309


def test_huge_output_is_drained_and_bounded(sdir):
    pre = script(sdir, "pre.sh", "head -c 3000000 /dev/zero | tr '\\0' x\necho\necho END-MARKER\n")
    plan = plan_for(config(sdir, preScriptLocation=pre, timeoutInSeconds=20))
    t0 = time.monotonic()
    r = run_pre(plan)
    assert r.ok, r.message
    assert time.monotonic() - t0 < 5
    s = r.scripts[0]
    assert s.output_bytes > 3000000
    assert len(s.output_tail) <= subp.OUTPUT_TAIL_BYTES
    assert s.output_tail.endswith("END-MARKER\n")


def test_missing_scripts_302_and_303(sdir):
    plan = plan_for(
        config(sdir, preScriptLocation=str(sdir / "nope-pre.sh"), postScriptLocation=str(sdir / "nope-post.sh"))
    )
    r = run_pre(plan)
    assert (r.code, r.ran) == (302, True) and "does not exist" in r.message
    assert run_post(plan).code == 303


@needs_root
def test_script_not_owned_by_root_is_refused_and_never_run(sdir):
    marker = sdir / "ran"
    pre = script(sdir, "pre.sh", "touch %s\n" % marker)
    os.chown(pre, NOBODY, NOBODY)
    plan = load_script_plan(config_path=config(sdir, preScriptLocation=pre), hook_dir=None)
    r = run_pre(plan)
    assert r.code == 306 and "owned by uid 65534" in r.message and "refused" in r.message
    assert not marker.exists()


@needs_root
def test_config_not_owned_by_root_is_318(sdir):
    cfg = config(sdir, preScriptLocation=script(sdir, "pre.sh", "true\n"))
    os.chown(cfg, NOBODY, NOBODY)
    plan = load_script_plan(config_path=cfg, hook_dir=None)
    assert (plan.enabled, plan.error_code) == (False, 318)
    assert run_pre(plan).code == 318


def test_world_writable_scripts_are_refused_306_307(sdir):
    marker = sdir / "ran"
    pre = script(sdir, "pre.sh", "touch %s\n" % marker, mode=0o777)
    post = script(sdir, "post.sh", "touch %s\n" % marker, mode=0o772)
    plan = plan_for(config(sdir, preScriptLocation=pre, postScriptLocation=post))
    assert run_pre(plan).code == 306
    assert run_post(plan).code == 307
    assert not marker.exists()


def test_script_in_a_world_writable_directory_is_refused(trusted):
    d = trusted / "open"
    d.mkdir()
    os.chmod(str(d), 0o777)
    pre = script(d, "pre.sh", "true\n")
    plan = plan_for(config(trusted, preScriptLocation=pre))
    r = run_pre(plan)
    assert r.code == 306 and "directory" in r.message


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_group_or_world_writable_config_is_317(sdir, mode):
    plan = plan_for(config(sdir, mode=mode, preScriptLocation=script(sdir, "pre.sh", "true\n")))
    assert (plan.enabled, plan.error_code) == (False, 317)


def test_retries_really_rerun(sdir):
    count = sdir / "count"
    pre = script(sdir, "pre.sh", "echo x >> %s\n[ $(wc -l < %s) -ge 2 ]\n" % (count, count))
    plan = plan_for(config(sdir, preScriptLocation=pre, preScriptNoOfRetries=1))
    r = run_pre(plan)
    assert r.ok and r.scripts[0].attempts == 2
    assert len(count.read_text().split()) == 2


def test_retries_exhausted_reports_the_failure(sdir):
    count = sdir / "count"
    pre = script(sdir, "pre.sh", "echo x >> %s\nexit 1\n" % count)
    post = script(sdir, "post.sh", "echo y >> %s\nexit 1\n" % count)
    plan = plan_for(
        config(sdir, preScriptLocation=pre, preScriptNoOfRetries=2, postScriptLocation=post, postScriptNoOfRetries="1")
    )
    r = run_pre(plan)
    assert (r.code, r.scripts[0].attempts) == (300, 3)
    p = run_post(plan)
    assert (p.code, p.scripts[0].attempts) == (301, 2)
    assert count.read_text().split() == ["x", "x", "x", "y", "y"]


def _hook(hooks, name, log, body_extra=""):
    return script(hooks, name, 'echo "%s $1" >> %s\n%s' % (name, log, body_extra), mode=0o755)


def test_hook_directory_order_and_post_in_reverse(sdir):
    log = sdir / "log"
    hooks = sdir / "hooks.d"
    hooks.mkdir(mode=0o755)
    os.chmod(str(hooks), 0o755)
    for name in ("20-b", "05-c", "10-a"):
        _hook(hooks, name, log)
    script(hooks, "15-not-executable", "echo bad >> %s\n" % log, mode=0o644)
    _hook(hooks, "12-backup~", log)
    _hook(hooks, ".hidden", log)
    _hook(hooks, "13-old.dpkg-old", log)
    cfg = config(
        sdir,
        preScriptLocation=script(sdir, "pre.sh", 'echo "config pre" >> %s\n' % log),
        postScriptLocation=script(sdir, "post.sh", 'echo "config post" >> %s\n' % log),
    )
    plan = plan_for(cfg, hook_dir=str(hooks))
    assert [u.name for u in plan.units] == ["ScriptRunner", "hook:05-c", "hook:10-a", "hook:20-b"]
    assert run_pre(plan).ok
    log.write_text(log.read_text() + "-- snapshot --\n")
    assert run_post(plan).ok
    assert log.read_text().splitlines() == [
        "config pre",
        "05-c freeze",
        "10-a freeze",
        "20-b freeze",
        "-- snapshot --",
        "20-b thaw",
        "10-a thaw",
        "05-c thaw",
        "config post",
    ]


def test_failed_pre_hook_stops_and_post_runs_only_for_entered_hooks(sdir):
    log = sdir / "log"
    hooks = sdir / "hooks.d"
    hooks.mkdir()
    os.chmod(str(hooks), 0o755)
    _hook(hooks, "10-a", log)
    _hook(hooks, "20-b", log, 'if [ "$1" = freeze ]; then exit 9; fi\n')
    _hook(hooks, "30-c", log)
    plan = (
        load_script_plan(config_path=None, hook_dir=str(hooks), owner_uid=UID)
        if not os.path.exists(script_config.DEFAULT_CONFIG_PATH)
        else plan_for(config(sdir), hook_dir=str(hooks))
    )
    r = run_pre(plan)
    assert (r.ok, r.code) == (False, 300) and "20-b" in r.message
    p = run_post(plan)
    assert p.ok
    assert log.read_text().splitlines() == ["10-a freeze", "20-b freeze", "20-b thaw", "10-a thaw"]


def test_insecure_hook_directory_runs_nothing(sdir):
    hooks = sdir / "hooks.d"
    hooks.mkdir()
    os.chmod(str(hooks), 0o777)
    _hook(hooks, "10-a", sdir / "log")
    plan = plan_for(config(sdir), hook_dir=str(hooks))
    assert (plan.enabled, plan.error_code) == (False, 306)
    assert "hook directory" in plan.message
    assert not (sdir / "log").exists()


def test_missing_hook_directory_means_no_hooks(sdir):
    plan = plan_for(config(sdir), hook_dir=str(sdir / "absent"))
    assert plan.error_code is None and not plan.enabled
    r = run_pre(plan)
    assert r.ok and not r.ran


@pytest.mark.parametrize(
    "text, needle",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"preScriptLocation": "relative/pre.sh"}', "absolute path"),
        ('{"preScriptLocation": "/x", "preScriptNoOfRetries": "many"}', "preScriptNoOfRetries"),
        ('{"preScriptLocation": "/x", "preScriptNoOfRetries": true}', "preScriptNoOfRetries"),
        ('{"timeoutInSeconds": -1}', "timeoutInSeconds"),
        ('{"fsFreezeEnabled": "sometimes"}', "fsFreezeEnabled"),
        ('{"preScriptLocation": "/x", "preScriptParams": "a b"}', "preScriptParams"),
    ],
)
def test_config_parse_errors_are_305(sdir, text, needle):
    path = sdir / "cfg.json"
    path.write_text(text)
    os.chmod(str(path), 0o600)
    plan = plan_for(str(path))
    assert (plan.enabled, plan.error_code) == (False, 305)
    assert needle in plan.message
    assert run_pre(plan).code == 305


def test_named_config_missing_is_316_default_missing_is_no_scripts(sdir):
    plan = plan_for(str(sdir / "absent.json"))
    assert (plan.enabled, plan.error_code) == (False, 316)
    if os.path.exists(script_config.DEFAULT_CONFIG_PATH):
        pytest.skip("this machine has %s" % script_config.DEFAULT_CONFIG_PATH)
    plan = load_script_plan(hook_dir=None)
    assert (plan.enabled, plan.error_code) == (False, None)
    plan = load_script_plan(config_path=script_config.DEFAULT_CONFIG_PATH, hook_dir=None)  # the default, spelt out
    assert (plan.enabled, plan.error_code) == (False, None)


def test_shebang_honoured_and_compatibility_fallbacks(sdir):
    log = sdir / "log"
    py = script(sdir, "pre.py", "import sys\nprint('python', sys.argv[1])\n", shebang="#!/usr/bin/env python3\n")
    plan = plan_for(config(sdir, preScriptLocation=py, preScriptParams=["ok"]))
    r = run_pre(plan)
    assert r.ok and r.scripts[0].output_tail == "python ok\n"
    # JSON-config script without an execute bit: run with /bin/sh, as Microsoft's runner always did
    noexec = script(sdir, "noexec.sh", "echo sh-ran >> %s\n" % log, mode=0o600, shebang="")
    assert run_pre(plan_for(config(sdir, preScriptLocation=noexec))).ok
    # executable without a shebang: what a shell does (ENOEXEC -> /bin/sh)
    nosb = script(sdir, "noshebang.sh", "echo nosb-ran >> %s\n" % log, mode=0o700, shebang="")
    assert run_pre(plan_for(config(sdir, preScriptLocation=nosb))).ok
    assert log.read_text().splitlines() == ["sh-ran", "nosb-ran"]


def test_flags_and_snapshot_decision(sdir):
    fail = script(sdir, "pre.sh", "exit 1\n")
    plan = plan_for(config(sdir, preScriptLocation=fail, continueBackupOnFailure=False, fsFreezeEnabled="true"))
    assert (plan.continue_on_failure, plan.fs_freeze_enabled) == (False, True)
    assert snapshot_decision(plan, run_pre(plan)) == (False, False)
    plan = plan_for(config(sdir, preScriptLocation=fail, fsFreezeEnabled=False))
    assert snapshot_decision(plan, run_pre(plan)) == (False, False)
    plan = plan_for(config(sdir, preScriptLocation=fail))
    assert snapshot_decision(plan, run_pre(plan)) == (True, True)
    ok = script(sdir, "ok.sh", "true\n")
    plan = plan_for(config(sdir, preScriptLocation=ok, fsFreezeEnabled=False))
    assert snapshot_decision(plan, run_pre(plan)) == (True, False)


def test_timeout_capped_by_host_timeout(sdir):
    pre = script(sdir, "pre.sh", "true\n")
    plan = load_script_plan(
        config_path=config(sdir, preScriptLocation=pre, timeoutInSeconds=99999),
        hook_dir=None,
        host_timeout_s=120,
        owner_uid=UID,
    )
    assert plan.units[0].pre.timeout_s == 120
    assert plan.to_dict()["units"][0]["pre"]["timeout_s"] == 120
    assert stat.S_IMODE(os.stat(pre).st_mode) == 0o700
