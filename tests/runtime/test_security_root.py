"""Root-only regression tests for issue 15 part B: `vmsnapshot snapshot` refuses directories another
user controls (and never writes through a planted symlink), and the final status survives a status
folder that fills up during the job. No freezing: fsfreeze is off in every configuration used here."""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSION = os.path.join(os.path.dirname(os.path.dirname(HERE)), "extension")

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mounts)")]


@pytest.fixture
def local_user():
    """An unprivileged user made for this test and removed after it."""
    name = "vmsnapt%s" % uuid.uuid4().hex[:6]
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        import pwd

        entry = pwd.getpwnam(name)
        yield name, entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["userdel", name], check=False)


@pytest.fixture
def user_area():
    """A directory an unprivileged user can reach (pytest's own tmp_path is root-only)."""
    area = tempfile.mkdtemp(prefix="vmsnapshot-sec-", dir="/tmp")
    os.chmod(area, 0o755)
    try:
        yield area
    finally:
        shutil.rmtree(area, ignore_errors=True)


def as_user(user, script):
    """Run a shell snippet as the unprivileged user (what an attacker can do)."""
    _, uid, gid = user
    subprocess.run(
        ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups", "/bin/sh", "-c", script], check=True
    )


def root_only_file(work):
    """A file only root may read or write, standing for /etc/shadow: it must stay untouched."""
    secret_dir = os.path.join(work, "root-only")
    os.makedirs(secret_dir, mode=0o700)
    target = os.path.join(secret_dir, "shadow")
    with open(target, "w") as f:
        f.write("root:x:0:0\n")
    os.chmod(target, 0o600)
    return target


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_size


def write_settings(vm, directory):
    path = os.path.join(directory, "job.json")
    with open(path, "w") as f:
        json.dump({"publicSettings": vm.public(0), "protectedSettings": vm.private()}, f)
    os.chmod(path, 0o600)
    return path


def run_snapshot(vm, settings_path):
    env = dict(os.environ, PYTHONPATH=EXTENSION, VMSNAPSHOT_CONFIG=vm.config)
    return subprocess.run(
        [vm.agent.python, "-B", "-m", "vmsnapshot", "snapshot", "--settings", settings_path],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_snapshot_refuses_a_settings_directory_another_user_controls(vm, local_user, user_area, tmp_path):
    target = root_only_file(str(tmp_path))
    before = digest(target)
    shared = os.path.join(user_area, "shared")
    os.makedirs(shared, mode=0o755)
    os.chown(shared, local_user[1], local_user[2])
    # The attack: a planted HandlerEnvironment.json whose logFolder the user owns, holding symlinks
    # (old and new log names) to the root-only file.
    as_user(
        local_user,
        """set -e; cd '%s'; mkdir logs
        printf '[{"handlerEnvironment": {"logFolder": "%s/logs"}}]' > HandlerEnvironment.json
        ln -s '%s' logs/vmsnapshot.log; ln -s '%s' logs/extension.log"""
        % (shared, shared, target, target),
    )
    settings_path = write_settings(vm, shared)  # root puts its settings file (0600) there
    proc = run_snapshot(vm, settings_path)
    assert digest(target) == before, "root wrote into a file through a user's symlink"
    assert proc.returncode != 0
    assert "refusing" in proc.stderr and shared in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(shared, "status"))
    assert vm.snapshots() == []


def test_snapshot_refuses_a_root_directory_below_a_user_directory(vm, local_user, user_area):
    shared = os.path.join(user_area, "home")
    inner = os.path.join(shared, "backup")
    os.makedirs(inner, mode=0o700)
    os.chown(shared, local_user[1], local_user[2])  # the user could rename `backup` away and back
    proc = run_snapshot(vm, write_settings(vm, inner))
    assert proc.returncode != 0 and "refusing" in proc.stderr and shared in proc.stderr, proc.stderr
    assert vm.snapshots() == []


def test_snapshot_in_a_root_directory_runs_and_never_follows_a_log_symlink(vm, tmp_path):
    target = root_only_file(str(tmp_path))
    before = digest(target)
    safe = tempfile.mkdtemp(prefix="vmsnapshot-test-", dir="/var/lib")
    try:
        os.makedirs(os.path.join(safe, "logs"))
        for name in ("extension.log", "vmsnapshot.log"):
            os.symlink(target, os.path.join(safe, "logs", name))
        proc = run_snapshot(vm, write_settings(vm, safe))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert digest(target) == before, "the log was written through a symlink"
        with open(os.path.join(safe, "status", "0.status")) as f:
            assert json.load(f)[0]["status"]["status"] == "success"
        assert len(vm.snapshots()) == len(vm.disk_names)
    finally:
        shutil.rmtree(safe)


@pytest.fixture
def small_status_fs(vm):
    """The handler's status folder on its own 1 MiB tmpfs, so the test can fill it."""
    status_dir = os.path.join(vm.agent.base, "status")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", status_dir], check=True)
    try:
        yield status_dir
    finally:
        subprocess.run(["umount", status_dir], check=False)


def fill(directory):
    """Write until the file system says ENOSPC."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        with open(os.path.join(directory, "probe"), "wb") as f:
            f.write(b"x" * 4096)


@pytest.mark.parametrize("reserve", ["reserve file", "no reserve (rewrite in place)"])
def test_final_status_survives_a_status_folder_that_fills_up_during_the_job(vm, small_status_fs, reserve):
    vm.write(0)
    proc = vm.agent.run("enable")
    assert proc.returncode == 0, proc.stderr
    if reserve != "reserve file":
        os.unlink(os.path.join(small_status_fs, "0.status.reserve"))
    fill(small_status_fs)
    first = vm.agent.status(0)[0]["status"]["status"]
    assert first == "transitioning", "the job ended before the folder was full: the test proved nothing"
    doc = vm.agent.wait_terminal(0, timeout=30)
    status = doc[0]["status"]
    assert (status["status"], status["code"]) == ("success", 1), status
    blob = vm.final_status_blob()[0]["status"]
    assert (blob["status"], blob["code"]) == ("success", "1"), blob
    assert len(vm.snapshots()) == len(vm.disk_names)
    again = vm.agent.run("enable")  # the same sequence again: still exit 0, status kept
    assert again.returncode == 0 and vm.agent.status(0)[0]["status"]["status"] == "success"
