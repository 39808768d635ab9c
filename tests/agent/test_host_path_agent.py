"""One host-path job through the real guest agent: a "Trusted Launch" VM (guest-state blob included, no SAS
URIs) whose snapshots the loopback host backup service takes (real snapshots in Azurite). What the agent ran
and reported, and that no secret (SAS signatures, snapshotTaskToken) is left under the agent's directories."""

import json

from agentchecks import QUIET_AGENT, assert_no_status_error, assert_reported_as_written

from harness.guestagent import extension_status
from harness.hostservice import HostService
from harness.jobs import b64json, safe_config
from harness.secretscan import files_containing

pytestmark = QUIET_AGENT


def test_trusted_launch_job_goes_to_the_host_through_the_agent(agent_vm):
    vm = agent_vm
    first = vm.versions[0]
    with HostService(vm.disks.azurite, vm.disks.container, {-1: "disk0.vhd", 0: "disk1.vhd"}) as host:
        safe_config(vm.runtime_config, vm.work, host_endpoint=host.endpoint)
        obj = {
            "backupMetadata": [{"Key": "BackupTaskId", "Value": "task-0"}],
            "includedDisks": {"dataDiskLunList": [0], "isOSDiskIncluded": True, "isVmgsBlobIncluded": True},
            "snapshotTaskToken": vm.disks.task_token,
        }
        settings = vm.handler_settings(
            0,
            public=vm.disks.public(0, objectStr=b64json(obj)),
            private=vm.disks.private(objectStr=b64json({"blobSASUri": []})),
        )
        vm.publish(first, 0, settings)
        vm.agent.start()
        vm.agent.process_goal_state()
        assert vm.new_commands() == [(first, "install"), (first, "enable")]
        status = vm.wait_terminal(0)
        dosnapshots = host.calls_of("dosnapshot")
    ext = assert_reported_as_written(vm, status, first, 0)
    assert (ext["status"], ext["code"]) == ("success", 1), ext
    report = json.loads(extension_status(status, vm.handler)[1]["substatus"][0]["name"])[0]["status"]
    tel = dict((t["Key"], t["Value"]) for t in report["telemetryData"])
    assert (tel["snapshotCreator"], tel["hostStatusCodeDoSnapshot"]) == ("backupHostService", "200")
    assert len(dosnapshots) == 1 and dosnapshots[0].body["diskIds"] == [0, -1]
    assert len(vm.snapshots_of_task("task-0")) == 2
    assert all(i["isSuccessful"] for i in report["snapshotInfo"])
    assert_no_status_error(vm)
    assert files_containing(vm.work, vm.disks.secrets()) == []
