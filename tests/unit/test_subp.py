"""vmsnapshot.subp: the runtime's only way to start a process, with real processes."""

import ast
import errno
import os
import signal
import sys
import time

import pytest
from vmsnapshot import subp

from harness.procs import Cancelled, cancel_after, wait_gone


def read_pid(path, seconds=3.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return int(open(path).read().split()[0])
        time.sleep(0.02)
    raise AssertionError("no pid written to %s" % path)


# -- run ----------------------------------------------------------------------------------------


def test_run_feeds_stdin_and_returns_both_streams():
    out, err = subp.run(["sh", "-c", "cat; echo oops >&2"], data=b"hello")
    assert (out, err) == (b"hello", b"oops\n")


def test_run_options_are_keyword_only():
    with pytest.raises(TypeError):
        subp.run(["true"], None, 5)


def test_run_failure_carries_command_exit_code_and_output():
    with pytest.raises(subp.ProcessError) as e:
        subp.run(["sh", "-c", "echo partial; echo first >&2; echo last words >&2; exit 7"])
    err = e.value
    assert (err.cmd[0], err.exit_code, err.stdout, err.stderr) == ("sh", 7, b"partial\n", b"first\nlast words\n")
    assert str(err) == "sh exited 7: last words"


def test_run_without_check_returns_the_output_of_a_failure():
    assert subp.run(["sh", "-c", "echo x; exit 3"], check=False) == (b"x\n", b"")


def test_run_of_a_missing_program_is_a_process_error_not_an_oserror():
    with pytest.raises(subp.ProcessError) as e:
        subp.run(["/nonexistent/program", "arg"])
    assert e.value.exit_code is None and "cannot run" in str(e.value) and str(e.value).startswith("program:")


def test_run_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = str(tmp_path / "pid")
    t0 = time.monotonic()
    with pytest.raises(subp.ProcessError) as e:
        subp.run(["sh", "-c", "sleep 300 & echo $! > %s; wait" % pidfile], timeout=0.5)
    assert "timed out after 0.5s" in str(e.value) and time.monotonic() - t0 < 5
    assert wait_gone(read_pid(pidfile)), "a child of the timed-out command survived"


def test_run_passes_env_and_cwd(tmp_path):
    out, _ = subp.run(
        ["sh", "-c", 'echo "$GREETING"; pwd'], env={"GREETING": "hi", "PATH": os.environ["PATH"]}, cwd=str(tmp_path)
    )
    assert out.decode().split("\n")[:2] == ["hi", os.path.realpath(str(tmp_path))]


# -- spawn --------------------------------------------------------------------------------------


def test_spawn_detaches_in_its_own_session_and_feeds_stdin(tmp_path):
    out = tmp_path / "out"
    proc = subp.spawn(["sh", "-c", "cat > %s; echo done" % out], data=b"the job spec", cwd=str(tmp_path))
    assert subp.wait(proc, 10) and proc.returncode == 0
    assert out.read_bytes() == b"the job spec"
    assert proc.stdout is None and proc.stderr is None  # /dev/null: nothing to drain


def test_spawn_session_and_group():
    proc = subp.spawn(["sleep", "30"])
    try:
        assert os.getsid(proc.pid) == proc.pid and os.getpgid(proc.pid) == proc.pid
    finally:
        proc.kill()
        proc.wait()
    proc = subp.spawn(["sleep", "30"], new_session=False)
    try:
        assert os.getpgid(proc.pid) == os.getpgid(0)
    finally:
        proc.kill()
        proc.wait()


def test_spawn_passes_only_the_descriptors_named(tmp_path):
    r, w = os.pipe()
    other_r, other_w = os.pipe()
    try:
        script = "echo through > /proc/self/fd/%d; ls /proc/self/fd > %s" % (w, tmp_path / "fds")
        proc = subp.spawn(["sh", "-c", script], pass_fds=(w,))
        assert subp.wait(proc, 10)
        os.close(w)
        assert os.read(r, 100) == b"through\n"
        fds = set((tmp_path / "fds").read_text().split())
        assert str(w) in fds and str(other_w) not in fds and str(other_r) not in fds
    finally:
        for fd in (r, other_r, other_w):
            os.close(fd)


def test_spawn_of_a_process_that_never_reads_its_stdin_does_not_raise():
    proc = subp.spawn(["true"], data=b"x" * (4 << 20))  # more than a pipe holds: the write meets a closed pipe
    assert subp.wait(proc, 10) and proc.returncode == 0


def test_wait_reports_a_process_still_running():
    proc = subp.spawn(["sleep", "30"])
    try:
        assert not subp.wait(proc, 0.1)
    finally:
        subp.kill_group(proc.pid, signal.SIGKILL)
    assert subp.wait(proc, 5) and proc.returncode == -signal.SIGKILL


def test_kill_group_of_a_group_that_is_gone_is_not_an_error():
    proc = subp.spawn(["true"])
    subp.wait(proc, 5)
    subp.kill_group(proc.pid, signal.SIGKILL)


def test_runtime_env_puts_this_package_first_and_keeps_the_rest(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    env = subp.runtime_env()
    first, rest = env["PYTHONPATH"].split(os.pathsep, 1)
    assert os.path.isdir(os.path.join(first, "vmsnapshot")) and rest == "/somewhere/else"
    monkeypatch.delenv("PYTHONPATH")
    assert subp.runtime_env()["PYTHONPATH"] == first
    out, _ = subp.run(
        [sys.executable, "-c", "import vmsnapshot.subp as s; print(s.__file__)"], env=subp.runtime_env(), cwd="/"
    )
    assert out.decode().strip() == os.path.abspath(subp.__file__)


# -- run_supervised -----------------------------------------------------------------------------


def test_supervised_exit_code_output_and_duration():
    done = subp.run_supervised(["sh", "-c", "echo out; echo err >&2; exit 4"], timeout_s=10)
    assert (done.exit_code, done.timed_out) == (4, False)
    assert sorted(done.output_tail.split()) == [b"err", b"out"] and done.output_bytes == 8
    assert 0 < done.duration_s < 5


def test_supervised_output_is_drained_and_only_a_tail_kept():
    done = subp.run_supervised(["sh", "-c", "head -c 1000000 /dev/zero; echo; echo END"], timeout_s=20, tail_bytes=100)
    assert done.exit_code == 0 and done.output_bytes == 1000005
    assert len(done.output_tail) == 100 and done.output_tail.endswith(b"\nEND\n")


def test_supervised_timeout_terms_then_kills_the_group(tmp_path):
    pidfile = str(tmp_path / "pid")
    script = "sh -c 'trap \"\" TERM; echo $$ > %s; while :; do sleep 1; done' & sleep 300" % pidfile
    t0 = time.monotonic()
    done = subp.run_supervised(["sh", "-c", script], timeout_s=0.3, kill_grace_s=0.3)
    assert done.timed_out and time.monotonic() - t0 < 0.3 + 0.3 + 2
    assert wait_gone(read_pid(pidfile)), "the child ignoring SIGTERM survived the group SIGKILL"


def test_supervised_background_child_holding_the_pipe_does_not_hold_us(tmp_path):
    t0 = time.monotonic()
    done = subp.run_supervised(["sh", "-c", "sleep 30 & echo started"], timeout_s=20, drain_after_exit_s=0.2)
    assert done.exit_code == 0 and done.output_tail == b"started\n" and not done.timed_out
    assert time.monotonic() - t0 < 3


def test_supervised_interrupted_kills_the_group_and_propagates(tmp_path):
    pidfile = str(tmp_path / "pid")
    with pytest.raises(Cancelled), cancel_after(0.5):
        subp.run_supervised(["sh", "-c", "sleep 300 & echo $! > %s; wait" % pidfile], timeout_s=60)
    assert wait_gone(read_pid(pidfile)), "a cancelled command's child survived"


def test_supervised_start_errors_are_left_to_the_caller(tmp_path):
    with pytest.raises(OSError) as e:
        subp.run_supervised(["/nonexistent/program"], timeout_s=5)
    assert e.value.errno == errno.ENOENT
    no_shebang = tmp_path / "script"
    no_shebang.write_text("echo hi\n")
    no_shebang.chmod(0o700)
    with pytest.raises(OSError) as e:
        subp.run_supervised([str(no_shebang)], timeout_s=5)
    assert e.value.errno == errno.ENOEXEC


def test_supervised_env_cwd_and_inherited_descriptor(tmp_path):
    path = tmp_path / "data"
    path.write_text("through the descriptor\n")
    fd = os.open(str(path), os.O_RDONLY)
    try:
        done = subp.run_supervised(
            ["sh", "-c", 'cat /proc/self/fd/%d; echo "$X"; pwd' % fd],
            timeout_s=10,
            env={"X": "y", "PATH": os.environ["PATH"]},
            pass_fds=(fd,),
        )
    finally:
        os.close(fd)
    assert done.output_tail == b"through the descriptor\ny\n/\n"


# -- the rule itself ----------------------------------------------------------------------------

_PROCESS_CALLS = {"fork", "forkpty", "system", "popen", "killpg", "posix_spawn", "posix_spawnp"}


def test_subp_is_the_only_runtime_module_that_starts_or_group_kills_processes():
    package = os.path.dirname(os.path.abspath(subp.__file__))
    offenders = []
    for name in sorted(os.listdir(package)):
        if not name.endswith(".py") or name == "subp.py":
            continue
        with open(os.path.join(package, name)) as f:
            tree = ast.parse(f.read(), name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names if a.name in ("subprocess", "pty", "multiprocessing")]
            elif isinstance(node, ast.ImportFrom):
                found = [node.module] if node.module in ("subprocess", "pty", "multiprocessing") else []
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os":
                attr = node.attr
                found = [attr] if attr in _PROCESS_CALLS or attr.startswith(("exec", "spawn")) else []
            else:
                found = []
            offenders.extend("%s:%d %s" % (name, node.lineno, f) for f in found)
    assert offenders == []
