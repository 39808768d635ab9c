"""vmsnapkit.arguments: durations, tags, VM ids and report paths are parsed by argparse types, so bad input
stops the command before any Azure call with a message naming the flag."""

import argparse
import datetime

import pytest
from vmsnapkit import arguments
from vmsnapkit.cli import build_parser


@pytest.mark.parametrize(
    "text, hours",
    [("26h", 26), ("90m", 1.5), ("2d", 48), ("1d12h", 36), ("0.5d", 12), (" 1d 2h 30m ", 26.5)],
)
def test_duration_values(text, hours):
    d = arguments.duration(text)
    assert d.delta == datetime.timedelta(hours=hours) and str(d) == text


@pytest.mark.parametrize("text", ["7x", "", "h", "26", "-1d", "1h2d"])
def test_duration_refuses_what_it_cannot_read(text):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        arguments.duration(text)


def test_tag_keeps_everything_after_the_first_equals_sign():
    assert arguments.tag("owner=o'brien") == ("owner", "o'brien")
    assert arguments.tag("k=a=b") == ("k", "a=b")
    assert arguments.tag("k=") == ("k", "")
    for bad in ("env", "=prod"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
            arguments.tag(bad)


def test_vm_ids_split_on_commas():
    a = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/a"
    b = "/SUBSCRIPTIONS/s2/resourcegroups/rg2/providers/microsoft.compute/virtualmachines/b/"
    refs = arguments.vm_ids(f"{a}, {b},")
    assert [(r.subscription, r.resource_group, r.name) for r in refs] == [("s1", "rg", "a"), ("s2", "rg2", "b")]
    with pytest.raises(argparse.ArgumentTypeError, match="'not-an-id' is not a VM resource id"):
        arguments.vm_ids(f"{a},not-an-id")


def test_report_path_needs_a_known_suffix_and_a_writable_directory(tmp_path):
    assert arguments.report_path(str(tmp_path / "r.HTML")) == str(tmp_path / "r.HTML")
    assert arguments.report_path(str(tmp_path / "r.md")) == str(tmp_path / "r.md")
    with pytest.raises(argparse.ArgumentTypeError, match="must end in .html or .md"):
        arguments.report_path(str(tmp_path / "r.txt"))
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist or is not writable"):
        arguments.report_path(str(tmp_path / "missing" / "r.html"))


def test_parsed_namespace_carries_typed_values(tmp_path):
    ns = build_parser().parse_args(
        [
            "verify",
            "--tag",
            "a=1",
            "--tag",
            "b=2",
            "--ids",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v",
            "--max-backup-age",
            "26h",
            "--report",
            str(tmp_path / "r.md"),
        ]
    )
    assert ns.tag == [("a", "1"), ("b", "2")] and [r.name for r in ns.vm_ids] == ["v"]
    assert ns.max_backup_age.delta == datetime.timedelta(hours=26) and ns.report == str(tmp_path / "r.md")
    jobs = build_parser().parse_args(["backup", "jobs"])
    assert jobs.since.delta == datetime.timedelta(days=7) and str(jobs.since) == "7d"


@pytest.mark.parametrize(
    "argv, flag",
    [
        (("backup", "jobs", "--since", "7x"), "--since"),
        (("backup", "status", "--since", "soon"), "--since"),
        (("verify", "--max-backup-age", "7x"), "--max-backup-age"),
        (("verify", "--tag", "env"), "--tag"),
        (("extensions", "list", "--vm-ids", "vm-1"), "--vm-ids"),
        (("verify", "--report", "out.txt"), "--report"),
        (("verify", "--report", "/nonexistent-dir/r.html"), "--report"),
        (("verify", "--max-concurrency", "0"), "--max-concurrency"),
    ],
)
def test_bad_input_fails_before_any_azure_call_naming_its_flag(emulator, kit_for, argv, flag):
    emu = emulator(vms=4, subscriptions=1)
    emu.clear_log()
    proc = kit_for(emu).run(*argv, check=2)
    assert f"argument {flag}" in proc.stderr and "Traceback" not in proc.stderr
    assert not proc.stdout
    assert emu.requests() == []  # not even the cloud metadata was read
