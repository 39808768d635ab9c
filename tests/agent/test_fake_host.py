"""The fake host's FastTrack behaviour on its own (no agent): ETags, 304, routing by the agent's advertised
features, and a WireServer left alone by FastTrack goal states. Fast."""

import json

import pytest

from harness.fasttrack import FABRIC, FAST_TRACK
from harness.wireserver import CONTAINER_ID, HOST_PLUGIN, WIRESERVER, FakeWireServer, GoalState

VM_SETTINGS = "http://%s/vmSettings" % HOST_PLUGIN
HANDLER = "Microsoft.RecoveryServices.VMSnapshotLinux"


@pytest.fixture
def host(tmp_path):
    return FakeWireServer(str(tmp_path), tenant=None, zips={"1.9.0": str(tmp_path / "x.zip")})


def get_vm_settings(host, etag=None):
    headers = {"x-ms-containerid": CONTAINER_ID}
    if etag:
        headers["if-none-match"] = etag
    return host.http_request("GET", VM_SETTINGS, None, headers=headers)


def settings(seq):
    return GoalState(HANDLER, "1.9.0", "enabled", seq, {"publicSettings": {"taskId": "t%d" % seq}})


def extensions_config(host):
    url = "http://%s/machine/c/r?comp=config&type=extensionsConfig&incarnation=%d" % (WIRESERVER, host.incarnation)
    return host.http_request("GET", url).read().decode()


def test_etags_and_not_modified(host):
    assert get_vm_settings(host).status == 404  # nothing published yet
    first = host.publish(settings(0))
    response = get_vm_settings(host)
    assert response.status == 200 and response.getheader("ETag") == first.etag
    doc = json.loads(response.read())
    assert (doc["extensionGoalStatesSource"], doc["inSvdSeqNo"]) == (FABRIC, first.in_svd_seq_no)
    assert doc["extensionGoalStates"][0]["settingsSeqNo"] == 0
    assert json.loads(doc["extensionGoalStates"][0]["settings"][0]["publicSettings"]) == {"taskId": "t0"}
    assert get_vm_settings(host, first.etag).status == 304 and host.not_modified == 1
    second = host.publish(settings(1))
    assert second.etag != first.etag
    assert get_vm_settings(host, first.etag).status == 200


def test_fast_track_only_for_an_agent_that_advertises_it(host):
    fabric = host.publish(settings(0))
    assert fabric.source == FABRIC and host.incarnation == 1
    host.status_uploads.append({"supportedFeatures": [{"Key": "FastTrack", "Value": "1.0"}]})
    fast = host.publish(settings(1))
    assert fast.source == FAST_TRACK and host.incarnation == 1, "FastTrack must leave the WireServer alone"
    assert 'seqNo="0"' in extensions_config(host) and 'inSvdSeqNo="%d"' % fabric.in_svd_seq_no in extensions_config(
        host
    )
    assert json.loads(get_vm_settings(host).read())["extensionGoalStatesSource"] == FAST_TRACK
    assert fast.created_on_ticks > fabric.created_on_ticks  # the agent takes the most recent of the two
    assert host.documents_carrying(fast) == ["vmSettings"]
    assert host.supplied(
        {
            "aggregateStatus": {
                "vmArtifactsAggregateStatus": {"goalStateAggregateStatus": {"inSvdSeqNo": fast.in_svd_seq_no}}
            }
        }
    ) == ("vmSettings", fast)


def test_a_host_without_vm_settings(host):
    host.vm_settings_supported = False
    host.status_uploads.append({"supportedFeatures": [{"Key": "FastTrack", "Value": "1.0"}]})
    assert host.publish(settings(0)).source == FABRIC
    assert get_vm_settings(host).status == 404
