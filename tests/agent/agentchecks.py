"""Assertions about what the real agent reported, shared by the tests/agent modules."""

import pytest

from harness.guestagent import extension_status, handler_status

STATUS_INVALID = 1012  # the agent's PluginSettingsStatusInvalid
# Microsoft's shipped VMSnapshotScriptPluginConfig.json with no script configured.
NO_SCRIPTS = {
    "pluginName": "ScriptRunner",
    "preScriptLocation": "",
    "postScriptLocation": "",
    "preScriptParams": [],
    "postScriptParams": [],
    "preScriptNoOfRetries": 0,
    "postScriptNoOfRetries": 0,
    "timeoutInSeconds": 30,
    "continueBackupOnFailure": True,
    "fsFreezeEnabled": True,
}
# The agent's own code (written for Python 2.6 to 3.x) is noisy under 3.11; our code's warnings still show.
QUIET_AGENT = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning:azurelinuxagent", "ignore:invalid escape sequence:DeprecationWarning"
)


def assert_reported_as_written(vm, status, version, seq):
    """The agent reports our handler Ready at `version` and passes our status file through unchanged."""
    entry = handler_status(status, vm.handler)
    assert entry is not None, "handler missing from the uploaded status: %r" % status
    assert entry["handlerVersion"] == version
    assert (entry["status"], entry["code"]) == ("Ready", 0), entry
    assert entry["formattedMessage"]["message"] == "Plugin enabled", entry  # no heartbeat, no error
    reported_seq, ext = extension_status(status, vm.handler)
    assert reported_seq == seq
    written = vm.status_file(version, seq)
    assert isinstance(written, list) and len(written) == 1
    ours = written[0]["status"]
    for key in ("status", "code", "operation"):
        assert ext[key] == ours[key], "agent reported %s=%r, the status file says %r" % (key, ext[key], ours[key])
    # The agent keeps only the message text: it stamps lang "en-US" on everything it reports upward.
    assert ext["formattedMessage"] == {"lang": "en-US", "message": ours["formattedMessage"]["message"]}
    assert [
        (s["name"], s["status"], s["code"], s["formattedMessage"]["message"]) for s in ext.get("substatus") or []
    ] == [(s["name"], s["status"], s["code"], s["formattedMessage"]["message"]) for s in ours.get("substatus") or []]
    return ext


def assert_no_status_error(vm):
    for upload in vm.wireserver.status_uploads:
        for entry in upload["aggregateStatus"]["handlerAggregateStatus"]:
            ext = ((entry.get("runtimeSettingsStatus") or {}).get("settingsStatus") or {}).get("status") or {}
            assert STATUS_INVALID not in (entry.get("code"), ext.get("code")), (
                "the agent could not parse our status file: %r" % entry
            )
