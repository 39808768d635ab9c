"""vmsnapkit.graphquery: every value put into KQL is an escaped literal, checked against the emulator's
Resource Graph, which reads string literals as KQL does (harness/armemu/graph.py)."""

import pytest
from vmsnapkit import graphquery
from vmsnapkit.selection import Selection, VmRef

from harness.armemu import generate_fleet
from harness.armemu.graph import KqlSyntaxError, Parsed

from .conftest import in_process_factory

NASTY = [
    "o'brien",
    "c:\\temp\\",
    "a | where 1 == 1",
    "x' or tags['env'] =~ 'prod",
    'double "quoted"',
    "http://example.invalid/path // not a comment",
    "two\nlines\tand tab",
    "\\'",
    "",
]
NASTY_TAGS = {"own'er": "o'brien", "pa\\th": "c:\\temp\\", "a|b": "x | where 1==1 //", 'q"k': "it's \\\\ fine"}


@pytest.mark.parametrize("value", NASTY)
def test_a_literal_reads_back_as_exactly_its_value(value):
    parsed = Parsed(f"Resources | where name =~ {graphquery.kql_string(value)}")
    assert parsed.literals == [value]
    assert "'" not in parsed.code and "|" not in parsed.code.split("=~", 1)[1]


def test_unterminated_literal_is_a_syntax_error():
    with pytest.raises(KqlSyntaxError):
        Parsed("Resources | where tags['owner'] =~ 'o'brien'")
    assert Parsed("Resources // it's a comment\n| where name =~ 'a'").literals == ["a"]


def test_filters_quote_every_value():
    sel = Selection(
        subscriptions=["s"],
        resource_groups=["rg'1"],
        vms=[VmRef("s", "rg'1", "vm\\1")],
        tags={"k'": "v|'"},
    )
    parsed = Parsed(graphquery.extension_query(sel, ["p'"], ["t\\"], with_protection=True))
    assert set(parsed.literals) >= {"rg'1", "k'", "v|'", "p'", "t\\", VmRef("s", "rg'1", "vm\\1").key}


def _fleet_with_nasty_tags():
    estate = generate_fleet(24, 2, missing_extension=0, unprotected=0)
    vms = sorted(estate.vms.values(), key=lambda v: v.id)
    for vm, (key, value) in zip(vms[::5], NASTY_TAGS.items()):
        vm.tags[key] = value
    return estate, vms


def test_tag_keys_and_values_with_quotes_backslashes_and_bars_select_exactly_their_vm(emulator, monkeypatch):
    estate, vms = _fleet_with_nasty_tags()
    emu = emulator(fleet=estate)
    factory = in_process_factory(emu, monkeypatch)
    subs = sorted(estate.subscriptions)
    for vm, (key, value) in zip(vms[::5], NASTY_TAGS.items()):
        query = graphquery.extension_query(Selection(subscriptions=subs, tags={key: value}), with_protection=True)
        rows = list(graphquery.rows(factory, subs, query))
        assert {r["vmId"] for r in rows} == {vm.id.lower()}, (key, value)
    # A crafted value stays a value: it selects nothing instead of every prod VM.
    crafted = Selection(subscriptions=subs, tags={"env": "x' or tags['env'] =~ 'prod"})
    assert list(graphquery.rows(factory, subs, graphquery.extension_query(crafted))) == []


def test_the_unescaped_query_of_before_is_refused_by_the_emulator(emulator, monkeypatch):
    from azure.core.exceptions import HttpResponseError

    emu = emulator(vms=4, subscriptions=1)
    factory = in_process_factory(emu, monkeypatch)
    subs = sorted(emu.estate.subscriptions)
    query = graphquery.extension_query(Selection(subscriptions=subs)).replace(
        "| project vmId", "| where tags['owner'] =~ 'o'brien'\n| project vmId", 1
    )
    with pytest.raises(HttpResponseError) as err:
        list(graphquery.rows(factory, subs, query))
    assert err.value.status_code == 400 and "ParserFailure" in str(err.value)


def test_cli_tag_with_a_quote_finds_its_vm_on_both_sources(emulator, kit_for):
    estate, vms = _fleet_with_nasty_tags()
    kit = kit_for(emulator(fleet=estate))
    for source in ("resourcegraph", "arm"):
        _, rows = kit.json("extensions", "list", "--all", "--source", source, "--tag", "own'er=o'brien", check=0)
        assert {r["vm"] for r in rows} == {vms[0].name}, source
