"""Goal-state publications and the HostGAPlugin's vmSettings document (FastTrack), for harness.wireserver.

On Azure a change to a VM's extensions reaches the guest agent in one of two ways:
- Fabric: the WireServer's goal state gets a new incarnation and a new ExtensionsConfig; the HostGAPlugin's
  `/vmSettings` carries the same extension goal state marked `"extensionGoalStatesSource": "Fabric"`;
- FastTrack: only `/vmSettings` changes (new ETag, `"extensionGoalStatesSource": "FastTrack"`); the WireServer's
  incarnation and ExtensionsConfig stay as they were. The host sends FastTrack goal states only to agents that
  advertise the "FastTrack" supported feature in their status (2.8 and later do; 2.7.3 does not).
The document follows the agent's own test data (WALinuxAgent tests/data/hostgaplugin/vm_settings.json).
"""

import json

FABRIC = "Fabric"
FAST_TRACK = "FastTrack"
HOST_GA_PLUGIN_VERSION = "1.0.8.179"  # agents ignore vmSettings below 1.0.8.133 (2.15) / 1.0.8.115 (2.7.3)
TICKS_BASE = 638000000000000000  # .NET ticks (100 ns since 0001-01-01), as createdOnTicks counts


class Publication(object):
    """One extension goal state as the host published it: its source and the identifiers both documents carry
    (inSvdSeqNo, createdOnTicks, activity and correlation ids). `number` counts publications from 1."""

    def __init__(self, goal_state, source, number, incarnation):
        self.goal_state = goal_state
        self.source = source
        self.number = number
        self.incarnation = incarnation  # the WireServer incarnation when it was published
        self.in_svd_seq_no = number  # unique per publication: the agent reports it back
        self.created_on_ticks = TICKS_BASE + number * 10**7
        self.activity_id = "a0a0a0a0-0000-4000-8000-%012d" % number
        self.correlation_id = "c0c0c0c0-0000-4000-8000-%012d" % number
        self.etag = "%d" % (9000000000000000000 + number * 7919)  # opaque to the agent, new per change

    def describe(self):
        gs = self.goal_state
        return {
            "source": self.source,
            "version": gs.version,
            "seq": gs.seq,
            "state": gs.state,
            "inSvdSeqNo": self.in_svd_seq_no,
            "etag": self.etag,
            "incarnation": self.incarnation,
        }


def vm_settings_document(publication, manifest_uris, status_blob, ga_family_uri):
    """The JSON text of /vmSettings for `publication` (one single-config handler)."""
    gs = publication.goal_state
    extension = {
        "name": gs.handler,
        "version": gs.version,
        "location": manifest_uris[0],
        "failoverLocation": manifest_uris[1],
        "additionalLocations": [],
        "state": gs.state,
        "autoUpgrade": False,
        "runAsStartupTask": False,
        "isJson": True,
        "useExactVersion": True,
        "isMultiConfig": False,
    }
    if gs.seq is not None:
        settings = gs.handler_settings or {}
        entry = {}
        if settings.get("protectedSettings") is not None:
            entry["protectedSettingsCertThumbprint"] = settings.get("protectedSettingsCertThumbprint")
            entry["protectedSettings"] = settings["protectedSettings"]
        if settings.get("publicSettings") is not None:
            entry["publicSettings"] = json.dumps(settings["publicSettings"])  # a JSON string, as the host sends
        extension["settingsSeqNo"] = gs.seq
        extension["settings"] = [entry]
    return json.dumps(
        {
            "hostGAPluginVersion": HOST_GA_PLUGIN_VERSION,
            "vmSettingsSchemaVersion": "0.0",
            "activityId": publication.activity_id,
            "correlationId": publication.correlation_id,
            "inSvdSeqNo": publication.in_svd_seq_no,
            "extensionsLastModifiedTickCount": publication.created_on_ticks,
            "extensionGoalStatesSource": publication.source,
            "onHold": False,
            "statusUploadBlob": {"statusBlobType": "BlockBlob", "value": status_blob},
            "inVMMetadata": {
                "subscriptionId": "00000000-0000-0000-0000-000000000000",
                "resourceGroupName": "rg-kit",
                "vmName": "kit-vm",
                "location": "eastus",
                "vmId": "6c3a1f6e-2b9d-4c1e-9d8f-7a6b5c4d3e2f",
                "vmSize": "Standard_D2s_v5",
                "osType": "Linux",
            },
            "gaFamilies": [{"name": "Prod", "uris": [ga_family_uri]}],
            "extensionGoalStates": [extension],
        },
        indent=2,
    )


def advertises_fast_track(vm_status):
    """Whether an uploaded VM status lists the "FastTrack" supported feature (what the host routes on)."""
    features = (vm_status or {}).get("supportedFeatures") or []
    return any(f.get("Key") == FAST_TRACK for f in features)
