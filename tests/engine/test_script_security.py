"""Issue 15: what is checked is what runs (defect 1), and no script process outlives its phase.

The race test is the attack of the review: an unprivileged user owns a directory above a root-owned
script directory and swaps it (renameat2 RENAME_EXCHANGE) with a directory of their own while root runs
the pre phase again and again. On the old runner (stat by path, then exec by path) the user's script ran
as root a few times in 200; now the user-owned ancestor is refused outright, every time.
"""

import json
import os
import pwd
import subprocess

import pytest
from vmsnapshot import script_config, scripts
from vmsnapshot.script_config import load_script_plan
from vmsnapshot.scripts import run_post, run_pre

from harness.procs import alive
from harness.trusteddir import TrustedDir

UID = os.geteuid()
needs_root = pytest.mark.skipif(UID != 0, reason="needs root (a second user and root-owned scripts)")
RACE_ROUNDS = 3000  # the old runner lost 1-7 times in 1000 here
SYSTEM_PYTHON = "/usr/bin/python3"  # the user cannot run root's venv interpreter

SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_renameat2 = {"x86_64": 316, "aarch64": 276}[os.uname().machine]
AT_FDCWD, RENAME_EXCHANGE = -100, 2
print("ready", flush=True)
n = 0
while True:
    if libc.syscall(SYS_renameat2, AT_FDCWD, b"scripts", AT_FDCWD, b"evil", RENAME_EXCHANGE) == 0:
        n += 1
"""


def write(path, text, mode, owner=None):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def config(directory, **fields):
    return write(os.path.join(directory, "cfg.json"), json.dumps(fields), 0o600)


@pytest.fixture
def trusted():
    with TrustedDir() as path:
        yield path


@pytest.fixture
def user():
    if UID != 0:
        pytest.skip("needs root")
    name = "vmsnapt%d" % (os.getpid() % 100000)
    subprocess.run(["userdel", name], stderr=subprocess.DEVNULL)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


@needs_root
def test_swapping_a_user_owned_ancestor_never_runs_the_users_script(trusted, user):
    home = os.path.join(trusted, "home")  # like /home/u: owned by the user
    os.mkdir(home, 0o755)
    os.chown(home, user.pw_uid, user.pw_gid)
    good = os.path.join(home, "scripts")
    os.mkdir(good, 0o755)  # root 0755: the script and its own directory pass the old static check
    write(os.path.join(good, "pre.sh"), "#!/bin/sh\nexit 0\n", 0o755)
    evil = os.path.join(home, "evil")
    os.mkdir(evil, 0o755)
    os.chown(evil, user.pw_uid, user.pw_gid)
    marker = os.path.join(trusted, "evil-ran-as-root")
    write(os.path.join(evil, "pre.sh"), '#!/bin/sh\necho "$(id -u)" >> %s\n' % marker, 0o755, owner=user)
    plan = load_script_plan(config_path=config(trusted, preScriptLocation=os.path.join(good, "pre.sh")), hook_dir=None)
    assert plan.enabled, plan.message
    swapper = subprocess.Popen(
        [SYSTEM_PYTHON, "-c", SWAPPER], cwd=home, user=user.pw_uid, group=user.pw_gid, stdout=subprocess.PIPE, text=True
    )
    codes = []
    try:
        assert swapper.stdout.readline().strip() == "ready"
        for _ in range(RACE_ROUNDS):
            codes.append(run_pre(plan).code)
    finally:
        swapper.kill()
        swapper.wait()
    ran = open(marker).read().split() if os.path.exists(marker) else []
    assert ran == [], "the user's script ran as uid %s in %d of %d pre phases" % (ran, len(ran), RACE_ROUNDS)
    assert set(codes) == {306}, "every round must be refused (the user-owned ancestor), got %s" % set(codes)
    r = run_pre(plan)
    assert "owned by uid %d" % user.pw_uid in r.message and home in r.message


@needs_root
def test_a_root_owned_chain_runs_and_a_symlink_is_followed_only_from_a_trusted_directory(trusted, user):
    etc = os.path.join(trusted, "etc")
    os.mkdir(etc, 0o755)
    log = os.path.join(trusted, "log")
    pre = write(os.path.join(etc, "pre.sh"), '#!/bin/sh\necho "pre $VMSNAPSHOT_SCRIPT" >> %s\n' % log, 0o755)
    os.symlink(pre, os.path.join(etc, "link.sh"))  # a root-made link in a root directory: followed
    for path in (pre, os.path.join(etc, "link.sh")):
        r = run_pre(load_script_plan(config_path=config(trusted, preScriptLocation=path), hook_dir=None))
        assert r.ok, r.message
    assert open(log).read().splitlines() == ["pre " + pre, "pre " + os.path.join(etc, "link.sh")]
    # a link to the same root-owned script, but through a user-owned directory: refused
    home = os.path.join(trusted, "home")
    os.mkdir(home, 0o755)
    os.chown(home, user.pw_uid, user.pw_gid)
    os.symlink(etc, os.path.join(home, "etc"))
    r = run_pre(
        load_script_plan(
            config_path=config(trusted, preScriptLocation=os.path.join(home, "etc", "pre.sh")), hook_dir=None
        )
    )
    assert r.code == 306 and "owned by uid %d" % user.pw_uid in r.message
    # the config itself in a user-owned directory: 317, nothing runs
    cfg = write(os.path.join(home, "cfg.json"), json.dumps({"preScriptLocation": pre}), 0o600)
    plan = load_script_plan(config_path=cfg, hook_dir=None)
    assert plan.error_code == 317 and home in plan.message


def test_the_checked_descriptor_is_what_runs(trusted):
    d = os.path.join(trusted, "s")
    os.mkdir(d, 0o755)
    path = write(os.path.join(d, "pre.sh"), '#!/bin/sh\necho checked "$@"\n', 0o700)
    fd, problem = script_config.open_checked_script(path, UID)
    assert problem is None
    try:
        # replaced after the check (by rename, as an attacker with write access would): no effect
        write(path + ".new", "#!/bin/sh\necho replaced\n", 0o700)
        os.rename(path + ".new", path)
        done = scripts.exec_checked(script_config.Script(path, ["a"]), fd, dict(os.environ), 10)
    finally:
        os.close(fd)
    assert done.output_tail == b"checked a\n"


def test_a_setsid_child_of_a_script_does_not_outlive_the_post_phase(trusted):
    d = os.path.join(trusted, "s")
    os.mkdir(d, 0o755)
    pids = os.path.join(trusted, "pids")
    # both escape the script's process group: a direct setsid child, and one behind an exited subshell
    pre = write(
        os.path.join(d, "pre.sh"),
        "#!/bin/sh\nsetsid sleep 1000 >/dev/null 2>&1 &\necho $! >> %s\n"
        "(setsid sleep 1001 >/dev/null 2>&1 & echo $! >> %s) &\nsleep 0.2\n" % (pids, pids),
        0o700,
    )
    post = write(
        os.path.join(d, "post.sh"), "#!/bin/sh\nsetsid sleep 1002 >/dev/null 2>&1 &\necho $! >> %s\n" % pids, 0o700
    )
    bystander = subprocess.Popen(["sleep", "60"])  # our own child from before the phase: left alone
    try:
        plan = load_script_plan(
            config_path=config(trusted, preScriptLocation=pre, postScriptLocation=post), hook_dir=None, owner_uid=UID
        )
        assert run_pre(plan).ok
        recorded = [int(x) for x in open(pids).read().split()]
        assert len(recorded) == 2
        # what a pre script leaves running (say, a session holding a lock) lives until the post phase
        assert all(alive(p) for p in recorded), "a pre script's background child was killed before the post phase"
        assert run_post(plan).ok
        recorded = [int(x) for x in open(pids).read().split()]
        assert len(recorded) == 3 and not [p for p in recorded if alive(p)]
        assert bystander.poll() is None, "a child that existed before the phase was killed"
    finally:
        bystander.kill()
        bystander.wait()
    for pid in recorded:  # killed and reaped: not even a zombie left under us
        assert not os.path.exists("/proc/%d" % pid) or not alive(pid)
