"""End-to-end snapshot jobs through the manifest commands against Azurite (freezing disabled)."""

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from harness.jobs import b64json, hook_dir, script_config_path
from tests.runtime.conftest import grep_tree


def blob_report(doc):
    return json.loads(doc[0]["status"]["substatus"][0]["name"])[0]["status"]


def test_enable_runs_a_crash_consistent_job(vm):
    vm.write(0)
    assert vm.agent.run("install").returncode == 0
    started = time.monotonic()
    proc = vm.agent.run("enable")
    enable_s = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    # Well under the agent's 300 s; the < 1 s figure is measured by bench/enable_latency.py, since a
    # timed assertion here would only measure how busy the machine is.
    assert enable_s < 3.0, "enable must return quickly (took %.2fs)" % enable_s
    doc = vm.agent.wait_terminal(0)
    status = doc[0]["status"]
    assert (status["status"], status["code"]) == ("success", 1), status["formattedMessage"]
    assert status["formattedMessage"]["lang"] == "en-US"
    report = blob_report(doc)
    info = report["snapshotInfo"]
    assert [i["isSuccessful"] for i in info] == [True, True]
    assert all("?snapshot=" in i["snapshotUri"] and "sig=" not in i["snapshotUri"] for i in info)
    assert json.loads(report["formattedMessage"]["message"])["snapshotConsistency"] == 3
    assert report["vmHealthInfo"] == {"vmHealthState": 0, "vmHealthStatusCode": 1}
    snaps = vm.snapshots()
    assert sorted(n for n, _, _ in snaps) == sorted(vm.disk_names)
    assert all(meta.get("BackupTaskId") == "task-0" and meta.get("Origin") == "kit-tests" for _, _, meta in snaps)
    # The status blob carries the same report, as Azure Backup reads it.
    blob = vm.final_status_blob()  # uploaded just after the local status: wait for it
    assert blob[0]["status"]["status"] == "success" and blob[0]["status"]["code"] == "1"
    # The job's log went to logsBlobUri (an append blob), redacted.
    log_text = vm.job_log("job seq 0 ended")
    assert "job seq 0 ended: code 1" in log_text
    assert not any(secret in log_text for secret in vm.secrets())
    assert grep_tree(vm.work, vm.secrets()) == []


def test_zh_cn_locale_writes_chinese_messages_with_the_same_code(vm):
    vm.write(0, public=vm.public(0, locale="zh-cn"))
    assert vm.agent.run("enable").returncode == 0
    status = vm.agent.wait_terminal(0)[0]["status"]
    assert status["code"] == 1
    assert status["formattedMessage"]["lang"] == "zh-CN"
    assert "启用成功" in status["formattedMessage"]["message"]


def test_unknown_locale_falls_back_to_english(vm):
    vm.write(0, public=vm.public(0, locale="fr-fr"))
    assert vm.agent.run("enable").returncode == 0
    status = vm.agent.wait_terminal(0)[0]["status"]
    assert status["formattedMessage"]["lang"] == "en-US" and status["code"] == 1


@pytest.mark.parametrize("cipher", ["-des3", "-aes256"])
def test_both_platform_ciphers_decrypt(vm, cipher):
    vm.write(0, cipher=cipher)
    assert vm.agent.run("enable").returncode == 0
    assert vm.agent.wait_terminal(0)[0]["status"]["code"] == 1


def test_same_sequence_again_starts_no_second_job(vm):
    vm.write(0)
    vm.agent.run("enable")
    vm.agent.wait_terminal(0)
    first = vm.snapshots()
    assert vm.agent.run("enable").returncode == 0
    time.sleep(0.5)
    assert vm.snapshots() == first
    assert vm.agent.status(0)[0]["status"]["code"] == 1


def test_ten_concurrent_enables_start_exactly_one_job(vm):
    vm.write(0)
    procs = [
        subprocess.Popen(
            ["/bin/sh", "-c", vm.agent.base + "/bin/handle.sh enable"],
            cwd=vm.agent.base,
            env=vm.agent.env(0),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(10)
    ]
    assert [p.wait(30) for p in procs] == [0] * 10
    vm.agent.wait_terminal(0)
    time.sleep(0.3)
    assert len(vm.snapshots()) == len(vm.disk_names)


def test_new_sequence_runs_a_new_job_and_a_replayed_task_id_does_not(vm):
    vm.write(0)
    vm.agent.run("enable")
    vm.agent.wait_terminal(0)
    vm.write(1)
    vm.agent.run("enable", seq=1)
    assert vm.agent.wait_terminal(1)[0]["status"]["code"] == 1
    assert len(vm.snapshots()) == 2 * len(vm.disk_names)
    vm.write(2, public=vm.public(1))  # the service re-sends task 1 under a new sequence number
    vm.agent.run("enable", seq=2)
    status = vm.agent.wait_terminal(2)[0]["status"]
    assert (status["status"], status["code"]) == ("success", 3)
    assert len(vm.snapshots()) == 2 * len(vm.disk_names)


def test_tampered_sas_fails_before_any_freeze_with_76(vm):
    uris = vm.disk_uris()
    bad = [u.replace("sig=", "sig=AAAA") for u in uris]
    vm.write(0, private=vm.private(objectStr=b64json({"blobSASUri": bad})))
    vm.agent.run("enable")
    status = vm.agent.wait_terminal(0)[0]["status"]
    assert (status["status"], status["code"]) == ("error", 76)
    assert "403" in status["formattedMessage"]["message"]
    assert vm.snapshots() == []


def test_one_bad_disk_of_two_is_761(vm):
    uris = vm.disk_uris()
    vm.write(0, private=vm.private(objectStr=b64json({"blobSASUri": [uris[0], uris[1].replace("disk1", "nodisk")]})))
    vm.agent.run("enable")
    status = vm.agent.wait_terminal(0)[0]["status"]
    assert status["code"] == 761
    assert vm.snapshots() == []


def test_unreachable_status_blob_still_ends_in_a_local_status(vm, azurite):
    dead = "https://127.0.0.1:9/%s/status.json?sv=1&sig=deadbeef" % vm.container
    vm.write(0, private=vm.private(statusBlobUri=dead))
    vm.agent.run("enable")
    doc = vm.agent.wait_terminal(0, timeout=60)
    assert doc[0]["status"]["code"] == 1
    report = blob_report(doc)
    assert "statusBlobUploadError=true" in json.loads(report["formattedMessage"]["message"])["messageStr"]


def test_unknown_command_is_a_clear_usage_error(vm):
    proc = vm.agent.handle("frobnicate", timeout=30)
    assert proc.returncode == 2
    assert "unknown command" in proc.stderr and "Traceback" not in proc.stderr


def test_disable_and_uninstall_are_idempotent_and_keep_configuration(vm):
    vm.write(0)
    assert vm.agent.run("install").returncode == 0
    for _ in range(2):
        assert vm.agent.run("disable").returncode == 0
    assert vm.agent.run("uninstall").returncode == 0
    assert vm.agent.run("uninstall").returncode == 0
    with open(vm.config) as f:
        assert "fsfreeze = false" in f.read()


def test_diagnose_reports_plan_and_never_prints_secrets(vm):
    vm.write(0)
    proc = vm.agent.handle("diagnose", "--json")
    doc = json.loads(proc.stdout)
    assert doc["freeze_plan"]["fsfreeze"] is False and doc["freeze_plan"]["would_freeze"] == []
    assert doc["settings"]["certificate_found"] and doc["settings"]["private_key_found"]
    assert doc["status_blob"]["reachable"] is True
    assert not any(s in proc.stdout for s in vm.secrets())


@pytest.fixture
def manual_dir(tmp_path):
    """Where an operator keeps a manual job's settings: as root, a directory only root controls (a root
    `snapshot` refuses directories others can write, /tmp included: tests/runtime/test_security_root.py)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    safe = tempfile.mkdtemp(prefix="vmsnapshot-manual-", dir="/var/lib")
    try:
        yield pathlib.Path(safe)
    finally:
        shutil.rmtree(safe)


def test_manual_snapshot_run_outside_the_agent(vm, manual_dir):
    settings_file = manual_dir / "manual.json"
    settings_file.write_text(json.dumps({"publicSettings": vm.public(0), "protectedSettings": vm.private()}))
    cmd = [vm.agent.base + "/bin/handle.sh", "snapshot", "--settings", str(settings_file)]
    os.chmod(str(settings_file), 0o644)
    refused = subprocess.run(cmd, env=vm.agent.env(0), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "chmod 600" in refused.stderr
    os.chmod(str(settings_file), 0o600)
    proc = subprocess.run(cmd, env=vm.agent.env(0), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("success (code 1)")
    assert len(vm.snapshots()) == len(vm.disk_names)
    assert not any(s in proc.stdout + proc.stderr for s in vm.secrets())


def test_proxy_from_waagent_conf_carries_every_storage_request(vm, azurite):
    from harness.connectproxy import ConnectProxy

    with ConnectProxy() as proxy:
        waagent_conf = os.path.join(vm.work, "etc-azure", "waagent.conf")
        os.makedirs(os.path.dirname(waagent_conf), exist_ok=True)
        with open(waagent_conf, "w") as f:
            f.write("# agent configuration\nHttpProxy.Host=127.0.0.1\nHttpProxy.Port=%d\n" % proxy.port)
        vm.write(0)
        vm.agent.run("enable")
        status = vm.agent.wait_terminal(0)[0]["status"]
    assert status["code"] == 1, status["formattedMessage"]
    assert proxy.seen and all(
        line == "CONNECT 127.0.0.1:%d HTTP/1.0" % azurite.port
        or line.startswith("CONNECT 127.0.0.1:%d " % azurite.port)
        for line in proxy.seen
    )
    assert len(vm.snapshots()) == len(vm.disk_names)


def test_job_writes_telemetry_events_in_the_agent_format(vm):
    vm.write(0)
    vm.agent.run("enable")
    vm.agent.wait_terminal(0)
    deadline = time.monotonic() + 5
    files = []
    while not files and time.monotonic() < deadline:
        files = [f for f in os.listdir(vm.agent.events_dir) if f.endswith(".json")]
        time.sleep(0.05)
    assert files and all(f[:-5].isdigit() for f in files)
    with open(os.path.join(vm.agent.events_dir, files[0])) as f:
        events = json.load(f)
    keys = {"Version", "Timestamp", "TaskName", "EventLevel", "Message", "EventPid", "EventTid", "OperationId"}
    assert events and all(set(e) == keys and all(isinstance(v, str) for v in e.values()) for e in events)
    assert any("job ended code=1" in e["Message"] for e in events)


@pytest.mark.skipif(os.geteuid() != 0, reason="hiding the interpreters needs a private mount namespace (root)")
def test_launcher_without_any_python_writes_a_clear_error_status(vm):
    vm.write(0)
    hide = (
        "for p in /usr/bin/python3* /usr/local/bin/python3* /usr/libexec/platform-python; do "
        '[ -e "$p" ] && mount --bind /bin/false "$p"; done; exec /bin/sh -c "$0"'
    )
    env = vm.agent.env(0)
    env.pop("VMSNAPSHOT_PYTHON", None)
    env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", hide, vm.agent.base + "/bin/handle.sh enable"],
        cwd=vm.agent.base,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 52 and "no Python >= 3.6" in proc.stderr
    status = vm.agent.status(0)[0]["status"]
    assert status["status"] == "error" and "No Python 3.6 or later" in status["formattedMessage"]["message"]


@pytest.mark.skipif(os.geteuid() != 0, reason="hooks must be root-owned")
def test_disable_during_a_pre_hook_kills_it_and_runs_its_thaw(vm, tmp_path):
    hooks = hook_dir(vm.work)
    os.makedirs(hooks, mode=0o700)
    marker = str(tmp_path / "hook.log")
    sleep = "sleep 300.%d" % (os.getpid() % 100000)  # this run's own sleeper: other sessions may run the suite too
    with open(os.path.join(hooks, "10-slow"), "w") as f:
        f.write(
            '#!/bin/sh\necho "$1" >> %s\n[ "$1" = freeze ] && %s && echo unreachable >> %s\n'
            "exit 0\n" % (marker, sleep, marker)
        )
    os.chmod(os.path.join(hooks, "10-slow"), 0o700)
    vm.write(0)
    assert vm.agent.run("enable").returncode == 0
    deadline = time.monotonic() + 20
    while not (os.path.exists(marker) and "freeze" in open(marker).read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert vm.agent.run("disable").returncode == 0
    assert time.monotonic() - started < 10
    status = vm.agent.wait_terminal(0)[0]["status"]
    assert status["status"] == "error" and "cancelled" in status["formattedMessage"]["message"]
    with open(marker) as f:
        assert f.read().split() == ["freeze", "thaw"]
    sleepers = subprocess.run(["pgrep", "-f", sleep], capture_output=True, text=True).stdout.split()
    assert sleepers == [], "the cancelled hook's process group is still running"
    assert vm.snapshots() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="script configs and scripts must be root-owned")
@pytest.mark.parametrize("continue_on_failure,expected_code,snapshots", [(False, 300, 0), (True, 1, 2)])
def test_microsoft_script_config_failure_rules(vm, tmp_path, continue_on_failure, expected_code, snapshots):
    etc = os.path.dirname(script_config_path(vm.work))  # a directory chain the runtime trusts
    os.makedirs(etc, exist_ok=True)
    pre, post = os.path.join(etc, "pre.sh"), os.path.join(etc, "post.sh")
    marker = str(tmp_path / "post.ran")
    for path, body in (
        (pre, "#!/bin/sh\necho quiescing failed >&2\nexit 3\n"),
        (post, "#!/bin/sh\ntouch %s\n" % marker),
    ):
        with open(path, "w") as f:
            f.write(body)
        os.chmod(path, 0o700)
    cfg = os.path.join(etc, "VMSnapshotScriptPluginConfig.json")
    with open(cfg, "w") as f:
        json.dump(
            {
                "pluginName": "ScriptRunner",
                "preScriptLocation": pre,
                "postScriptLocation": post,
                "timeoutInSeconds": 10,
                "continueBackupOnFailure": continue_on_failure,
                "fsFreezeEnabled": True,
            },
            f,
        )
    os.chmod(cfg, 0o600)
    vm.write(0)
    vm.agent.run("enable")
    status = vm.agent.wait_terminal(0)[0]["status"]
    assert status["code"] == expected_code, status["formattedMessage"]
    assert len(vm.snapshots()) == snapshots
    assert os.path.exists(marker), "the post script must run once the pre script ran"


def _job_processes(base):
    """Supervisor and worker processes of this test VM's extension (both run with cwd = its base dir)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cwd = os.readlink("/proc/%s/cwd" % name)
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cwd == base and b"vmsnapshot" in cmd and (b"supervise" in cmd or b"worker" in cmd):
            found.append(int(name))
    return found


DISABLE_RACE_ROUNDS = 6


def test_disable_racing_enable_leaves_no_job_behind(vm):
    """Issue 15, defect 6: disable read job.json without enable's lock, said "no job running" and the job
    finished afterwards. Now disable takes the lock, sees the starting job and stops it."""
    for seq in range(DISABLE_RACE_ROUNDS):
        vm.write(seq)
        enable = threading.Thread(target=vm.agent.run, args=("enable", seq))
        enable.start()
        time.sleep(0.01 * (seq % 3))  # disable right behind enable: before, as and after it takes its lock
        disabled = vm.agent.run("disable", seq)
        enable.join(60)
        assert disabled.returncode == 0
        assert _job_processes(vm.agent.base) == [], "round %d: a job process survived disable (%s)" % (
            seq,
            disabled.stdout.strip(),
        )
        after = vm.agent.status(seq)
        time.sleep(1.0)  # a job that survived would finish now
        later = vm.agent.status(seq)
        for doc in (after, later):
            assert doc is not None and doc[0]["status"]["status"] == "error", "round %d: %s after disable (%s)" % (
                seq,
                doc and doc[0]["status"],
                disabled.stdout.strip(),
            )
    assert vm.snapshots() == []
