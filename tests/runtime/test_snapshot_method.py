"""Snapshot method selection (host-path-and-workloads §2): every method value from each source x every
forcing flag x LUN-list cases x with and without SAS URIs, checked against the rules written out here, in
this process and under each runtime interpreter (3.6 and the newest); wrong types end in a coded status
through the real enable, never a traceback."""

import itertools
import json
import os
import subprocess

import pytest
from vmsnapshot import snapshot_method as sm

from harness.jobs import b64json

EXTENSION = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "extension")

METHODS = ["onlyGuest", "onlyHost", "firstHostThenGuest", "firstGuestThenHost"]
CONFIG_VALUES = [None, "", "ONLYHOST", "bogus"] + METHODS
CUSTOM_VALUES = [None, "", "weird"] + METHODS
FORCING = {
    "none": ({}, {}),
    "vmgs": ({"isVmgsBlobIncluded": True}, {}),
    "directdrive": ({"isAnyDirectDriveDiskIncluded": True}, {}),
    "wa-flag": ({"isAnyWADiskIncluded": True}, {}),
    "wa-lun-included": ({}, {"waDiskLunList": [1]}),
    "wa-lun-not-included": ({}, {"waDiskLunList": [7]}),
    "flags-false": ({"isVmgsBlobIncluded": False, "isAnyWADiskIncluded": False}, {}),
}
LUN_CASES = {
    "luns": {"dataDiskLunList": [0, 1]},
    "excluded-no-list": {"isAnyDiskExcluded": True, "dataDiskLunList": []},
    "excluded-missing-list": {"isAnyDiskExcluded": True},
    "excluded-with-list": {"isAnyDiskExcluded": True, "dataDiskLunList": [1]},
}


def rules(config, custom_value, forcing, luns, have_sas):
    """The selection rules, written out independently of the runtime: (method) or ("error", code)."""
    flags, custom_extra = FORCING[forcing]
    disks = dict(LUN_CASES[luns], **flags)
    requested = config if config not in (None, "") else custom_value if custom_value not in (None, "") else None
    method = next((m for m in METHODS if requested and requested.lower() == m.lower()), "firstHostThenGuest")
    lun_list = disks.get("dataDiskLunList") or []
    forced = any(disks.get(f) for f in ("isVmgsBlobIncluded", "isAnyDirectDriveDiskIncluded", "isAnyWADiskIncluded"))
    forced = forced or bool(set(lun_list) & set(custom_extra.get("waDiskLunList", [])))
    if disks.get("isAnyDiskExcluded") and not lun_list:
        if forced:
            return ("error", 17)
        method = "onlyGuest"
    elif forced:
        method = "onlyHost"
    if not have_sas and method != "onlyHost":
        return ("error", 11)
    return (method,)


CASES = [
    dict(config=c, custom=u, forcing=f, luns=lc, have_sas=s)
    for c, u, f, lc, s in itertools.product(CONFIG_VALUES, CUSTOM_VALUES, FORCING, LUN_CASES, (True, False))
]

# Runs under each runtime interpreter (pyenv's 3.6 and the newest, outside the venv): given the runtime's directory.
RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from vmsnapshot import snapshot_method as sm
out = []
for case in json.load(sys.stdin):
    try:
        c = sm.choose(case["config"], case["custom_settings"], case["disks"], case["have_sas"])
        out.append([c.method, c.reason])
    except sm.MethodError as e:
        out.append(["error", e.code, e.message])
    except Exception as e:
        out.append(["crash", repr(e)])
print(json.dumps(out))
"""


def inputs(case):
    flags, custom_extra = FORCING[case["forcing"]]
    custom = dict(custom_extra)
    if case["custom"] is not None:
        custom["takeSnapshotFrom"] = case["custom"]
    return dict(
        config=case["config"],
        custom_settings=custom,
        disks=dict(LUN_CASES[case["luns"]], **flags),
        have_sas=case["have_sas"],
    )


def evaluate(case):
    i = inputs(case)
    try:
        c = sm.choose(i["config"], i["custom_settings"], i["disks"], i["have_sas"])
        return [c.method, c.reason]
    except sm.MethodError as e:
        return ["error", e.code, e.message]


def test_selection_matrix_follows_the_rules():
    assert len(CASES) > 1000
    for case in CASES:
        got = evaluate(case)
        want = rules(case["config"], case["custom"], case["forcing"], case["luns"], case["have_sas"])
        assert tuple(got[: len(want)]) == want, (case, got)
        assert got[-1], case  # every choice and every error says why


def test_reasons_name_what_decided():
    forced = evaluate(dict(config=None, custom="onlyGuest", forcing="directdrive", luns="luns", have_sas=True))
    assert forced[0] == "onlyHost" and "DirectDrive" in forced[1] and "customSettings.takeSnapshotFrom" in forced[1]
    err = evaluate(dict(config=None, custom=None, forcing="vmgs", luns="excluded-no-list", have_sas=True))
    assert err[:2] == ["error", 17] and "guest-state" in err[2]
    wa = evaluate(dict(config=None, custom=None, forcing="wa-lun-included", luns="luns", have_sas=True))
    assert "LUN 1" in wa[1]
    unknown = evaluate(dict(config="bogus", custom=None, forcing="none", luns="luns", have_sas=True))
    assert unknown[0] == "firstHostThenGuest" and "unknown method 'bogus'" in unknown[1]


WRONG_TYPES = [
    ("flag-as-string", None, {"isVmgsBlobIncluded": "true"}, 11, "isVmgsBlobIncluded"),
    ("flag-as-number", None, {"isAnyDirectDriveDiskIncluded": 1}, 11, "isAnyDirectDriveDiskIncluded"),
    ("excluded-as-string", None, {"isAnyDiskExcluded": "false"}, 11, "isAnyDiskExcluded"),
    ("lun-as-string", None, {"dataDiskLunList": ["0"]}, 17, "dataDiskLunList"),
    ("lun-list-as-string", None, {"dataDiskLunList": "0,1"}, 17, "dataDiskLunList"),
    ("lun-as-bool", None, {"dataDiskLunList": [True]}, 17, "dataDiskLunList"),
    ("wa-lun-as-string", {"waDiskLunList": ["0"]}, {}, 11, "waDiskLunList"),
    ("wa-list-as-string", {"waDiskLunList": "0"}, {}, 11, "waDiskLunList"),
    ("method-as-number", {"takeSnapshotFrom": 5}, {}, 11, "takeSnapshotFrom"),
    ("method-as-bool", {"takeSnapshotFrom": True}, {}, 11, "takeSnapshotFrom"),
]


@pytest.mark.parametrize("case", WRONG_TYPES, ids=[c[0] for c in WRONG_TYPES])
def test_wrong_types_are_coded_in_process(case):
    _, custom, disks, code, field = case
    with pytest.raises(sm.MethodError) as e:
        sm.choose(None, custom or {}, dict({"dataDiskLunList": [0]}, **disks))
    assert e.value.code == code and field in e.value.message


def test_runtime_interpreter_agrees_on_the_whole_matrix(runtime_python):
    cases = [inputs(c) for c in CASES]
    cases += [
        dict(config=None, custom_settings=custom or {}, disks=dict({"dataDiskLunList": [0]}, **disks), have_sas=True)
        for _, custom, disks, _, _ in WRONG_TYPES
    ]
    proc = subprocess.run(
        [runtime_python, "-B", "-c", RUNNER, EXTENSION],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    want = [evaluate(c) for c in CASES]
    for _, custom, disks, _, _ in WRONG_TYPES:
        try:
            sm.choose(None, custom or {}, dict({"dataDiskLunList": [0]}, **disks))
        except sm.MethodError as e:
            want.append(["error", e.code, e.message])
    assert got == want  # same methods, same reasons, same codes and messages


SETTINGS_CASES = [
    ("vmgs-as-string", {"isVmgsBlobIncluded": "true"}, None, True, 11, "isVmgsBlobIncluded"),
    ("lun-as-string", {"dataDiskLunList": ["0"]}, None, True, 17, "dataDiskLunList"),
    ("wa-lun-as-string", {}, {"waDiskLunList": "0"}, True, 11, "waDiskLunList"),
    ("method-as-number", {}, {"takeSnapshotFrom": 3}, True, 11, "takeSnapshotFrom"),
    (
        "excluded-no-list-host-forced",
        {"isAnyDiskExcluded": True, "dataDiskLunList": [], "isAnyDirectDriveDiskIncluded": True},
        None,
        True,
        17,
        "DirectDrive",
    ),
    ("only-guest-without-sas", {}, {"takeSnapshotFrom": "onlyGuest"}, False, 11, "blobSASUri"),
    ("excluded-no-list-without-sas", {"isAnyDiskExcluded": True, "dataDiskLunList": []}, None, False, 11, "blobSASUri"),
    (
        "instant-access-as-string",
        {"instantAccessDurationMinutes": "300"},
        None,
        True,
        11,
        "instantAccessDurationMinutes",
    ),
]


@pytest.mark.parametrize("case", SETTINGS_CASES, ids=[c[0] for c in SETTINGS_CASES])
def test_bad_selection_settings_end_in_a_coded_status(vm, case):
    _, disks, custom, with_sas, code, text = case
    obj = {
        "backupMetadata": [{"Key": "BackupTaskId", "Value": "t"}],
        "includedDisks": dict({"dataDiskLunList": [0], "isOSDiskIncluded": True}, **disks),
    }
    pub = vm.public(0, objectStr=b64json(obj), customSettings=json.dumps(custom) if custom else None)
    private = vm.private() if with_sas else vm.private(objectStr=b64json({"blobSASUri": []}))
    vm.write(0, public=pub, private=private)
    assert vm.agent.run("enable").returncode == 0
    status = vm.agent.wait_terminal(0)[0]["status"]
    message = status["formattedMessage"]["message"]
    assert (status["status"], status["code"]) == ("error", code), message
    assert text in message and "Traceback" not in message
    assert vm.snapshots() == []
