"""Which document each agent takes its extension goal state from: the HostGAPlugin's vmSettings (FastTrack)
or the WireServer's ExtensionsConfig (Fabric), run against every agent of the matrix.

The fake host behaves like Azure: the first goal state is a Fabric one (nothing has advertised FastTrack
yet); after that an agent whose status lists the "FastTrack" supported feature (2.8 and later) gets its goal
states through vmSettings only, with a new ETag each, while the WireServer's incarnation stays put. The proof
is twofold: the goal state the agent reports having processed (its inSvdSeqNo, unique per publication) and
the class of the goal state object the agent holds (ExtensionsGoalStateFromVmSettings or ...FromExtensionsConfig).
About 15 s per agent (2.7.3 waits one goal-state period of 6 s for a mismatch retry).
"""

import os
import time

import pytest
from agentchecks import NO_SCRIPTS, QUIET_AGENT, assert_no_status_error, assert_reported_as_written

from harness.fasttrack import FABRIC, FAST_TRACK, advertises_fast_track

SUCCESS_CRASH_CONSISTENT = 1
FROM_VM_SETTINGS = "ExtensionsGoalStateFromVmSettings"
FROM_EXTENSIONS_CONFIG = "ExtensionsGoalStateFromExtensionsConfig"
pytestmark = QUIET_AGENT


@pytest.fixture(scope="module")
def vm(agent_vm):
    agent_vm.passed = set()
    return agent_vm


def knows_fast_track(vm):
    """2.8 and later advertise FastTrack and act on vmSettings-only goal states; 2.7.3 does neither."""
    return [int(x) for x in vm.agent.version.split(".")[:2]] >= [2, 8]


def describe(vm, seq, held, doc):
    print(
        "agent %s on Python %s: seq %d supplied by %s (host sent it as %s; the agent holds %s, id %s)"
        % (vm.agent.version, vm.agent.python_version, seq, doc, vm.publication.source, held["parsed_from"], held["id"])
    )


def test_the_first_goal_state_comes_from_the_wireserver(vm):
    first = vm.versions[0]
    vm.write_script_config(NO_SCRIPTS)
    publication = vm.publish(first, 0, vm.handler_settings(0))
    assert publication.source == FABRIC, "no agent has advertised FastTrack yet: the host sends a Fabric goal state"
    vm.agent.start()
    held = vm.agent.process_goal_state()
    assert held["ran"] and vm.new_commands() == [(first, "install"), (first, "enable")]
    status = vm.wait_terminal(0)
    assert_reported_as_written(vm, status, first, 0)
    doc, supplied = vm.wireserver.supplied(status)
    describe(vm, 0, held, doc)
    assert (doc, supplied) == ("extensionsConfig", publication)
    assert "extensionsConfig" in vm.wireserver.documents_carrying(publication)
    if knows_fast_track(vm):  # 2.15 ignores vmSettings whose source is Fabric and takes ExtensionsConfig
        assert held["parsed_from"] == FROM_EXTENSIONS_CONFIG, held
    assert advertises_fast_track(status) == knows_fast_track(vm), status.get("supportedFeatures")
    assert vm.snapshot_count() == len(vm.disks.disk_names)
    vm.passed.add("enable")


def test_a_new_sequence_number_takes_the_agents_path(vm):
    """2.15: FastTrack, from vmSettings only. 2.7.3: Fabric, from ExtensionsConfig (its vmSettings copy agrees)."""
    if "enable" not in vm.passed:
        pytest.skip("needs the first goal state")
    first = vm.versions[0]
    incarnation = vm.wireserver.incarnation
    publication = vm.publish(first, 1, vm.handler_settings(1))
    held = vm.agent.process_goal_state()
    assert held["ran"] and vm.new_commands() == [(first, "enable")]
    status = vm.wait_terminal(1)
    ext = assert_reported_as_written(vm, status, first, 1)
    assert (ext["status"], ext["code"]) == ("success", SUCCESS_CRASH_CONSISTENT), ext
    doc, supplied = vm.wireserver.supplied(status)
    describe(vm, 1, held, doc)
    assert supplied is publication
    if knows_fast_track(vm):
        assert publication.source == FAST_TRACK
        assert doc == "vmSettings" and vm.wireserver.documents_carrying(publication) == ["vmSettings"]
        assert vm.wireserver.incarnation == incarnation, "a FastTrack goal state must not touch the WireServer"
        assert (held["parsed_from"], held["source"], held["id"]) == (
            FROM_VM_SETTINGS,
            FAST_TRACK,
            "etag_" + publication.etag,
        ), held
    else:
        assert publication.source == FABRIC
        assert doc == "extensionsConfig" and vm.wireserver.incarnation == incarnation + 1
        # 2.7.3 fetches vmSettings too and, when they agree with ExtensionsConfig, keeps the vmSettings copy.
        assert vm.wireserver.documents_carrying(publication) == ["extensionsConfig", "vmSettings"]
    assert len(vm.snapshots_of_task("task-1")) == len(vm.disks.disk_names)
    assert_no_status_error(vm)
    vm.passed.add("new-seq")


def test_a_fast_track_goal_state_with_a_new_sequence_number_starts_exactly_one_job(vm):
    if "new-seq" not in vm.passed:
        pytest.skip("needs the previous phase")
    if not knows_fast_track(vm):
        pytest.skip(
            "agent %s does not advertise FastTrack, so the host sends it no FastTrack goal state "
            "(see test_2_7_3_does_not_act_on_a_fast_track_only_goal_state)" % vm.agent.version
        )
    first = vm.versions[0]
    before = vm.snapshot_count()
    publication = vm.publish(first, 2, vm.handler_settings(2))
    assert publication.source == FAST_TRACK
    assert vm.agent.process_goal_state()["ran"]
    assert vm.new_commands() == [(first, "enable")]
    ext = assert_reported_as_written(vm, vm.wait_terminal(2), first, 2)
    assert (ext["status"], ext["code"]) == ("success", SUCCESS_CRASH_CONSISTENT), ext

    # Nothing new: the agent names the ETag it holds, the HostGAPlugin answers 304 and no handler runs.
    not_modified = vm.wireserver.not_modified
    for _ in range(3):
        time.sleep(1)
        assert vm.agent.process_goal_state()["ran"] is False
        assert_reported_as_written(vm, vm.agent.report(), first, 2)
    assert vm.wireserver.not_modified >= not_modified + 3, "the agent did not send If-None-Match with the ETag"
    assert vm.new_commands() == []
    assert len(vm.snapshots_of_task("task-2")) == len(vm.disks.disk_names), "not exactly one job for seq 2"
    assert vm.snapshot_count() == before + len(vm.disks.disk_names)
    assert_no_status_error(vm)


def test_2_7_3_does_not_act_on_a_fast_track_only_goal_state(vm):
    """What 2.7.3 does with vmSettings: it fetches them on every goal-state update and holds them when they match
    ExtensionsConfig; a goal state present only in vmSettings is a mismatch, retried once after the goal-state
    period (6 s), and its handlers never run: 2.7.3 runs them only on a new WireServer incarnation."""
    if "new-seq" not in vm.passed:
        pytest.skip("needs the previous phase")
    if knows_fast_track(vm):
        pytest.skip("agent %s takes FastTrack goal states (tested above)" % vm.agent.version)
    first = vm.versions[0]
    before = vm.snapshot_count()
    publication = vm.publish(first, 2, vm.handler_settings(2), source=FAST_TRACK)  # a host would not do this
    started = time.monotonic()
    held = vm.agent.process_goal_state()
    took = time.monotonic() - started
    print(
        "2.7.3 on a FastTrack-only goal state: %.1f s, ran=%s, holds %s %s"
        % (took, held["ran"], held["parsed_from"], held["id"])
    )
    assert "vmSettings" in vm.wireserver.documents_carrying(publication), "2.7.3 did not even fetch vmSettings"
    assert took >= 5, "2.7.3 retries a vmSettings/ExtensionsConfig mismatch after its 6 s goal-state period"
    assert held["ran"] is False and vm.new_commands() == []
    # After the retry (304) it even holds the vmSettings copy, but runs nothing until a new incarnation.
    assert (held["parsed_from"], held["id"]) == (FROM_VM_SETTINGS, publication.etag), held
    assert not os.path.exists(os.path.join(vm.handler_dir(first), "config", "2.settings"))
    time.sleep(2)
    assert_reported_as_written(vm, vm.agent.report(), first, 1)
    assert vm.snapshot_count() == before
