"""The built extension zip driven through the real Linux guest agent's own extension handling.

One VM's life, in order (each test is a phase and needs the previous ones; phases marked agent_full are left
out on the core-only combination of the agent matrix, see conftest.py): install + enable with a real
snapshot job against Azurite over HTTPS (freezing disabled), the same goal state again, an agent restart, a
new sequence number, an upgrade to a rebuilt higher version, settings that fail, a zh-cn job, a rollback to
the older version, disable, uninstall. Every assertion is about what the agent itself did and reported: the
commands it ran, the status blob it uploaded, the files it left. About 55 s in all, most of it the agent's
own 2 s per command.
"""

import json
import os
import re
import time

import pytest
from agentchecks import NO_SCRIPTS, QUIET_AGENT, assert_no_status_error, assert_reported_as_written

from harness.fasttrack import FABRIC, FAST_TRACK, advertises_fast_track
from harness.guestagent import extension_status, handler_status
from harness.secretscan import files_containing, sas_signatures

SUCCESS_CRASH_CONSISTENT = 1  # codes.SUCCESS: every disk snapshotted, nothing frozen
BAD_PARAMETER = 11
EVENT_KEYS = ("Version", "Timestamp", "TaskName", "EventLevel", "Message", "EventPid", "EventTid", "OperationId")
EVENT_LEVELS = ("Critical", "Error", "Warning", "Verbose", "Informational", "LogAlways")
pytestmark = QUIET_AGENT


def require(vm, *phases):
    missing = [p for p in phases if p not in vm.passed]
    if missing:
        pytest.skip("needs the %s phase(s), which did not pass" % ", ".join(missing))


@pytest.fixture(scope="module")
def vm(agent_vm):
    agent_vm.passed = set()
    return agent_vm


def read(path):
    with open(path) as f:
        return f.read()


def test_install_and_enable_runs_one_snapshot_job(vm):
    first = vm.versions[0]
    vm.write_script_config(NO_SCRIPTS)
    vm.publish(first, 0, vm.handler_settings(0))
    vm.agent.start()  # protocol detection: transport cert, goal state, certificates
    thumb = vm.tenant.thumbprint
    for ext in (".crt", ".prv"):
        assert os.path.exists(os.path.join(vm.agent.lib_dir, thumb + ext)), "the agent did not unpack the tenant cert"
    vm.agent.process_goal_state()
    assert vm.new_commands() == [(first, "install"), (first, "enable")]

    status = vm.wait_terminal(0)
    ext = assert_reported_as_written(vm, status, first, 0)
    assert (ext["status"], ext["code"]) == ("success", SUCCESS_CRASH_CONSISTENT), ext
    assert len(vm.snapshots_of_task("task-0")) == len(vm.disks.disk_names), (
        "expected one snapshot per disk: %r" % vm.disks.snapshots()
    )
    assert vm.snapshot_count() == len(vm.disks.disk_names)

    base = vm.handler_dir(first)
    henv = json.loads(read(os.path.join(base, "HandlerEnvironment.json")))
    assert henv[0]["handlerEnvironment"]["statusFolder"] == os.path.join(base, "status")
    # How the agent itself reads our manifest (2.7.3 uses plain truthiness: the string "false" would be True).
    manifest = vm.agent.read_manifest(base)
    assert manifest == {
        "is_report_heartbeat": False,  # so no heartbeat.log is owed
        "is_continue_on_update_failure": False,
        "supports_multiple_extensions": False,
        "is_update_with_install": True,
    }
    assert os.path.exists(os.path.join(base, "config", "0.settings"))
    assert read(os.path.join(base, "config", "HandlerState")).strip() == "Enabled"
    assert read(os.path.join(base, "mrseq")).strip() == "0"
    assert_no_status_error(vm)
    vm.passed.add("enable")


def test_same_goal_state_again_runs_no_second_job(vm):
    require(vm, "enable")
    first = vm.versions[0]
    before = vm.snapshot_count()
    reported_before = extension_status(vm.wireserver.last_status, vm.handler)[1]
    assert vm.deliver_again() == [(first, "enable")], "the agent calls enable again for the same sequence number"
    for _ in range(3):  # a second job would have written a new status and snapshots within ~0.5 s
        time.sleep(1)
        status = vm.agent.report()
        ext = assert_reported_as_written(vm, status, first, 0)
        assert (ext["status"], ext["code"], ext["formattedMessage"]) == (
            reported_before["status"],
            reported_before["code"],
            reported_before["formattedMessage"],
        )
    assert vm.snapshot_count() == before, "enable on the same sequence number took new snapshots"
    vm.passed.add("same-seq")


def test_agent_restart_runs_no_second_job(vm):
    require(vm, "enable")
    first = vm.versions[0]
    before = vm.snapshot_count()
    vm.restart_agent()  # a new transport certificate, the same goal state
    vm.agent.process_goal_state()
    assert vm.new_commands() == [(first, "enable")], "a starting agent enables every handler again"
    time.sleep(2)
    ext = assert_reported_as_written(vm, vm.agent.report(), first, 0)
    assert (ext["status"], ext["code"]) == ("success", SUCCESS_CRASH_CONSISTENT), ext
    assert vm.snapshot_count() == before, "an agent restart took new snapshots"
    vm.passed.add("restart")


def test_new_sequence_number_runs_a_new_job(vm):
    require(vm, "enable")
    first = vm.versions[0]
    before = vm.snapshot_count()
    # A FIPS VM's protected settings: AES-256 instead of the default 3DES.
    assert vm.deliver(first, 1, vm.handler_settings(1, cipher="-aes256")) == [(first, "enable")]
    status = vm.wait_terminal(1)
    ext = assert_reported_as_written(vm, status, first, 1)
    assert (ext["status"], ext["code"]) == ("success", SUCCESS_CRASH_CONSISTENT), ext
    assert len(vm.snapshots_of_task("task-1")) == len(vm.disks.disk_names)
    assert vm.snapshot_count() == before + len(vm.disks.disk_names)
    assert read(os.path.join(vm.handler_dir(first), "mrseq")).strip() == "1"
    assert_no_status_error(vm)
    vm.passed.add("new-seq")


def test_upgrade_follows_the_agent_update_order(vm):
    require(vm, "enable")
    old, new = vm.versions[0], vm.versions[-1]
    before = vm.snapshot_count()
    ran = vm.deliver(new, 2, vm.handler_settings(2))
    assert ran == [(old, "disable"), (new, "update"), (old, "uninstall"), (new, "install"), (new, "enable")]
    update_env = re.search(
        r"Executing command: \S+-%s/\S+ update with environment variables: (\{.*\})" % re.escape(new),
        vm.agent.command_log(vm.handler),
    )
    assert json.loads(update_env.group(1))["AZURE_GUEST_AGENT_UPDATING_FROM_VERSION"] == old

    status = vm.wait_terminal(2)
    ext = assert_reported_as_written(vm, status, new, 2)
    assert (ext["status"], ext["code"]) == ("success", SUCCESS_CRASH_CONSISTENT), ext
    assert vm.snapshot_count() == before + len(vm.disks.disk_names)
    assert not os.path.exists(vm.handler_dir(old)), "the old version's directory is left behind"
    base = vm.handler_dir(new)
    assert sorted(os.listdir(os.path.join(base, "status"))) == ["0.status", "1.status", "2.status"]
    assert read(os.path.join(base, "mrseq")).strip() == "2"
    henv = json.loads(read(os.path.join(base, "HandlerEnvironment.json")))
    assert henv[0]["handlerEnvironment"]["configFolder"] == os.path.join(base, "config")
    assert_no_status_error(vm)
    vm.passed.add("upgrade")


@pytest.mark.agent_full
def test_bad_settings_surface_as_error_11(vm):
    require(vm, "upgrade")
    new = vm.versions[-1]
    before = vm.snapshot_count()
    public = vm.disks.public(3, objectStr="this is not base64!")
    assert vm.deliver(new, 3, vm.handler_settings(3, public=public)) == [(new, "enable")]
    status = vm.wait_terminal(3)
    ext = assert_reported_as_written(vm, status, new, 3)  # enable still exits 0: the handler stays Ready
    assert (ext["status"], ext["code"]) == ("error", BAD_PARAMETER), ext
    message = ext["formattedMessage"]["message"]
    assert "objectStr" in message and "base64" in message, message
    assert vm.snapshot_count() == before
    assert_no_status_error(vm)
    vm.passed.add("bad-settings")


@pytest.mark.agent_full
def test_chinese_status_passes_through_the_agent(vm):
    """locale zh-cn (Azure China): the agent carries our Chinese message upward unchanged, but not its lang."""
    require(vm, "upgrade")
    new = vm.versions[-1]
    before = vm.snapshot_count()
    assert vm.deliver(new, 4, vm.handler_settings(4, public=vm.disks.public(4, locale="zh-cn"))) == [(new, "enable")]
    ext = assert_reported_as_written(vm, vm.wait_terminal(4), new, 4)
    assert (ext["status"], ext["code"]) == ("success", SUCCESS_CRASH_CONSISTENT), ext
    assert vm.status_file(new, 4)[0]["status"]["formattedMessage"]["lang"] == "zh-CN"
    assert "启用成功" in ext["formattedMessage"]["message"], ext["formattedMessage"]
    assert ext["formattedMessage"]["lang"] == "en-US"  # the agent's doing (exthandlers/wire.py), not ours
    assert vm.snapshot_count() == before + len(vm.disks.disk_names)
    assert_no_status_error(vm)


@pytest.mark.agent_full
def test_downgrade_when_a_version_is_rolled_back(vm):
    """The fabric goes back to the older version (a pulled release). The agent then runs the HIGHER version's
    update command, in its own directory, with VERSION and AZURE_GUEST_AGENT_UPDATING_FROM_VERSION both set to
    the lower version; the lower version must still run the new job once and only once."""
    require(vm, "upgrade")
    old, new = vm.versions[0], vm.versions[-1]
    before = vm.snapshot_count()
    ran = vm.deliver(old, 5, vm.handler_settings(5))
    assert ran == [(new, "disable"), (new, "update"), (new, "uninstall"), (old, "install"), (old, "enable")]
    ext = assert_reported_as_written(vm, vm.wait_terminal(5), old, 5)
    assert (ext["status"], ext["code"]) == ("success", SUCCESS_CRASH_CONSISTENT), ext
    assert vm.snapshot_count() == before + len(vm.disks.disk_names)
    assert not os.path.exists(vm.handler_dir(new))

    # The same goal state again on the rolled-back version: mrseq (copied by the agent) holds.
    assert vm.deliver_again() == [(old, "enable")]
    time.sleep(2)
    assert_reported_as_written(vm, vm.agent.report(), old, 5)
    assert vm.snapshot_count() == before + len(vm.disks.disk_names), "the rolled-back version re-ran the job"
    assert_no_status_error(vm)
    vm.passed.add("downgrade")


def test_disable(vm):
    require(vm, "upgrade")
    new = vm.published.version  # the version installed last (after the rollback)
    assert vm.deliver_again(state="disabled") == [(new, "disable")]
    entry = handler_status(vm.agent.report(), vm.handler)
    assert (entry["handlerVersion"], entry["status"], entry["code"]) == (new, "NotReady", 0), entry
    assert entry["formattedMessage"]["message"] == "Plugin disabled"
    base = vm.handler_dir(new)
    assert read(os.path.join(base, "config", "HandlerState")).strip() == "Installed"
    assert os.path.exists(os.path.join(base, "status", "%d.status" % vm.published.seq))
    assert_no_status_error(vm)
    vm.passed.add("disable")


@pytest.mark.agent_full
def test_telemetry_events_follow_the_contract(vm):
    require(vm, "enable")
    events_dir = os.path.join(vm.agent.handler_log_dir(vm.handler), "events")
    names = os.listdir(events_dir)
    assert names, "no telemetry event was written"
    for name in names:
        assert re.match(r"^\d+\.json$", name), "the agent ignores event file %s" % name
        doc = json.loads(read(os.path.join(events_dir, name)))
        for event in doc if isinstance(doc, list) else [doc]:
            assert sorted(event) == sorted(EVENT_KEYS), event
            assert all(isinstance(v, str) for v in event.values()), "2.7.3 takes strings only: %r" % event
            assert event["EventLevel"] in EVENT_LEVELS
            assert 0 < len(event["Message"]) <= 3072 and len(json.dumps(event)) < 6144


def secrets(vm):
    """What must never reach the disk: SAS signatures and the decrypted protected settings."""
    private = vm.disks.private()
    needles = sas_signatures(vm.disks.disk_uris() + [vm.disks.status_uri, vm.disks.log_uri])
    return needles + [json.dumps(private), private["objectStr"]] + vm.disks.disk_uris()


def test_no_decrypted_secret_under_the_agent_directories(vm):
    require(vm, "enable")
    hits = files_containing(vm.work, secrets(vm))
    assert hits == [], "secrets on disk: %r" % hits


def test_uninstall(vm):
    require(vm, "disable")
    new = vm.published.version  # the version installed last (after the rollback)
    assert vm.deliver_again(state="uninstall") == [(new, "uninstall")]  # no disable: the handler was not Enabled
    status = vm.agent.report()
    assert status["aggregateStatus"]["handlerAggregateStatus"] == []
    assert not os.path.exists(vm.handler_dir(new))
    assert not [n for n in os.listdir(vm.agent.lib_dir) if n.endswith(".zip")]
    log_dir = vm.agent.handler_log_dir(vm.handler)
    assert os.path.exists(os.path.join(log_dir, "CommandExecution.log")), "the log folder outlives uninstall"
    assert os.path.exists(vm.runtime_config), "uninstall keeps the configuration"
    assert files_containing(vm.work, secrets(vm)) == []
    assert_no_status_error(vm)


def test_every_request_was_answered(vm):
    require(vm, "enable")
    for method, url in vm.wireserver.unhandled:
        print("unhandled by the fake WireServer: %s %s" % (method, url))
    ws = vm.wireserver
    sources = [p.source for p in ws.publications]
    via_plugin = [u for _, u in ws.requests if u.endswith("/extensionArtifact")]
    print(
        "agent %s on Python %s drove %d requests, %d status uploads; goal states sent as %s; vmSettings "
        "answered 304 %d times; %d artifact downloads through the HostGAPlugin"
        % (
            vm.agent.version,
            vm.agent.python_version,
            len(ws.requests),
            len(ws.status_uploads),
            sources,
            ws.not_modified,
            len(via_plugin),
        )
    )
    # The host sends FastTrack to an agent that advertised it: for 2.15 every phase after the first ran that way.
    expected = FAST_TRACK if advertises_fast_track(ws.last_status) else FABRIC
    assert sources[0] == FABRIC and set(sources[1:]) == {expected}, sources
    artifacts = [u for _, u in vm.wireserver.unhandled if "artifacts" in u]
    assert artifacts == [], "the agent asked for artifacts the fake does not serve"
