"""Regression tests for issue 15 part B, through the real launcher and agent layout on both runtime
interpreters: plain http only to true loopback, deeply nested JSON, taskId whitespace, log injection,
URI userinfo and file modes."""

import base64
import json
import os
import re
import stat
import time

import pytest

from harness.jobs import b64json
from tests.runtime.conftest import grep_tree

DEEP = "[" * 50000

# Host names and address forms that are not loopback (a name resolves wherever its owner wants; octal,
# hex and short forms are read differently by resolvers) and those that are.
NOT_LOOPBACK = [
    "127.attacker.example",
    "127.0.0.1.attacker.example",
    "localhost.evil",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "127.1",
    "2130706433",
    "127.0.0.01",
]


def enable_status(vm, seq=0):
    proc = vm.agent.run("enable", seq)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return vm.agent.wait_terminal(seq, timeout=20)[0]["status"]


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_plain_http_to_a_name_or_odd_address_form_is_refused(vm, host):
    vm.write(private=vm.private(statusBlobUri="http://%s:8080/c/status?sig=topsecret" % host))
    status = enable_status(vm)
    assert status["code"] == 11 and "plain http" in status["formattedMessage"]["message"], status
    assert vm.snapshots() == []


@pytest.mark.parametrize("place", ["settings file", "objectStr", "customSettings", "protectedSettings"])
def test_deeply_nested_json_ends_in_code_11_and_the_sequence_is_not_interrupted(vm, place):
    if place == "settings file":
        with open(os.path.join(vm.agent.base, "config", "0.settings"), "w") as f:
            f.write(DEEP)
    elif place == "objectStr":
        vm.write(public=vm.public(0, objectStr=base64.b64encode(DEEP.encode()).decode()))
    elif place == "customSettings":
        vm.write(public=vm.public(0, customSettings=DEEP))
    else:
        vm.agent.write_settings(0, vm.public(0), vm.tenant.encrypt(DEEP), vm.tenant.thumbprint)
    status = enable_status(vm)
    assert status["code"] == 11, status
    assert place in status["formattedMessage"]["message"] and "nest" in status["formattedMessage"]["message"]
    # The same sequence again (agent restart) keeps that status: never "interrupted by a reboot".
    again = enable_status(vm)
    assert again["code"] == 11 and "interrupted" not in again["formattedMessage"]["message"], again


def test_task_id_resent_with_whitespace_does_not_run_twice(vm):
    vm.write(0, public=vm.public(0, taskId="task-replay-1"))
    assert enable_status(vm, 0)["status"] == "success"
    assert len(vm.snapshots()) == len(vm.disk_names)
    vm.write(1, public=vm.public(1, taskId="  task-replay-1 \t\n"))
    status = enable_status(vm, 1)
    assert status["code"] == 3, status  # already processed
    assert len(vm.snapshots()) == len(vm.disk_names), "the same task ran twice"


def _written_files(vm):
    """Every file the runtime wrote in the agent's log folder and the handler's status/state files."""
    out = []
    for root in (vm.agent.log_dir, os.path.join(vm.agent.base, "status")):
        for dirpath, _, names in os.walk(root):
            out += [os.path.join(dirpath, n) for n in names]
    out += [
        vm.agent.base + "/" + n
        for n in ("mrseq", "task_identity", "enable.lock")
        if os.path.exists(os.path.join(vm.agent.base, n))
    ]
    return out


def test_a_task_id_with_a_newline_cannot_forge_a_log_line_and_files_are_0600(vm):
    forged = "2030-01-01T00:00:00.000 1 ERROR vmsnapshot: FORGED line"
    vm.write(0, public=vm.public(0, taskId="task-inject\r\n" + forged + "\x1b[2K"))
    status = enable_status(vm)
    assert status["status"] == "success", status
    log_path = os.path.join(vm.agent.log_dir, "extension.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "ended" not in open(log_path).read():
        time.sleep(0.05)
    text = open(log_path).read()
    assert "FORGED" in text, "the task id should be logged (escaped)"
    assert not any(line.startswith(forged) for line in text.splitlines()), "a log line was forged"
    assert "\x1b" not in text and "\r" not in text
    assert "task-inject\\r\\n" + forged in text
    report = json.loads(status["substatus"][0]["name"])[0]["status"]
    assert report["taskId"] == "task-inject\\r\\n" + forged + "\\x1b[2K"
    assert not os.path.exists(os.path.join(vm.agent.log_dir, "vmsnapshot.log"))
    files = _written_files(vm)
    assert log_path in files and os.path.join(vm.agent.base, "status", "0.status") in files
    loose = {f: oct(stat.S_IMODE(os.lstat(f).st_mode)) for f in files if os.lstat(f).st_mode & 0o077}
    assert loose == {}, "files readable by others"


def test_uri_userinfo_never_appears_in_status_or_logs(vm):
    uris = [re.sub(r"^https://", "https://kituser:kitpassword@", u) for u in vm.disk_uris()]
    vm.write(private=vm.private(objectStr=b64json({"blobSASUri": uris})))
    status = enable_status(vm)
    assert status["status"] == "error"
    assert "REDACTED@" in status["formattedMessage"]["message"], status["formattedMessage"]
    time.sleep(0.5)  # the log blob and telemetry are written after the status
    assert grep_tree(vm.work, ["kitpassword", "kituser"] + vm.secrets()) == []
    assert "kitpassword" not in json.dumps(vm.status_blob())
