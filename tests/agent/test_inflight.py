"""An upgrade that arrives while a snapshot job is still running (contract §12.2: "a snapshot in flight when
disable or uninstall arrives must end"), driven through the real agent.

The first job is held in a slow pre-snapshot hook (a quiesce step that would take 30 s), so the agent's
update sequence (disable old, update new, uninstall old, install new, enable new) runs while it is in
flight; the new version's job then runs the same hook quickly. About 25 s.
"""

import os
import signal
import time

import pytest
from agentchecks import QUIET_AGENT, assert_no_status_error, assert_reported_as_written

from harness.guestagent import extension_status

SUCCESS_APP_CONSISTENT = 0  # codes.SUCCESS_APP_CONSISTENT: the pre-snapshot hook ran and succeeded
SLOW_SECONDS = 30
# Every call is logged; the quiesce step is slow only while the flag file exists (the first job).
QUIESCE_HOOK = """#!/bin/sh
echo "$1 start" >> %(log)s
if [ "$1" = freeze ] && [ -e %(flag)s ]; then sleep %(seconds)d; fi
echo "$1 end" >> %(log)s
"""

pytestmark = [QUIET_AGENT, pytest.mark.agent_full]


def processes_mentioning(text):
    """[(pid, command line)] of processes whose command line mentions `text`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found.append((int(pid), cmdline.strip()))
    return found


class Run(object):
    """What one in-flight upgrade left behind, for the tests below to judge."""


@pytest.fixture(scope="module")
def run(agent_vm):
    vm, r = agent_vm, Run()
    r.vm, r.old, r.new = vm, vm.versions[0], vm.versions[-1]
    r.hook_log = os.path.join(vm.work, "hook.log")
    flag = os.path.join(vm.work, "quiesce-slowly")
    open(flag, "w").close()
    r.hook = vm.write_hook("10-quiesce", QUIESCE_HOOK % {"log": r.hook_log, "flag": flag, "seconds": SLOW_SECONDS})

    vm.publish(r.old, 0, vm.handler_settings(0))
    vm.agent.start()
    vm.agent.process_goal_state()
    r.first_commands = vm.new_commands()
    r.in_flight = extension_status(vm.agent.report(), vm.handler)[1]
    os.remove(flag)

    started = time.monotonic()
    r.update_commands = vm.deliver(r.new, 1, vm.handler_settings(1))
    r.update_seconds = time.monotonic() - started
    time.sleep(1)
    r.hooks_left_running = processes_mentioning(r.hook)
    r.old_dir_processes = processes_mentioning(vm.handler_dir(r.old))
    r.cancelled = vm.status_file(r.new, 0)[0]["status"]  # copied into the new directory after the old disable
    r.final = vm.wait_terminal(1, timeout=60)
    yield r
    for pid, _ in processes_mentioning(r.hook):  # an orphaned hook this test caused: end it by its pid
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_the_update_cancels_the_running_job(run):
    vm = run.vm
    assert run.first_commands == [(run.old, "install"), (run.old, "enable")]
    assert run.in_flight["status"] == "transitioning", "the job should still be in its hook: %r" % run.in_flight
    assert run.update_commands == [
        (run.old, "disable"),
        (run.new, "update"),
        (run.old, "uninstall"),
        (run.new, "install"),
        (run.new, "enable"),
    ]
    assert run.update_seconds < SLOW_SECONDS, "the update waited for the job instead of cancelling it"
    print("cancelled job: code %s, %s" % (run.cancelled["code"], run.cancelled["formattedMessage"]["message"]))
    assert run.cancelled["status"] == "error", run.cancelled
    assert vm.snapshots_of_task("task-0") == []
    assert run.old_dir_processes == [], "processes of the removed version are still running"


def test_the_new_version_runs_its_job(run):
    vm = run.vm
    ext = assert_reported_as_written(vm, run.final, run.new, 1)
    assert (ext["status"], ext["code"]) == ("success", SUCCESS_APP_CONSISTENT), ext
    assert len(vm.snapshots_of_task("task-1")) == len(vm.disks.disk_names)
    assert_no_status_error(vm)


def test_a_cancelled_quiesce_is_stopped_and_undone(run):
    """A quiesced application must not stay quiesced because disable or uninstall cancelled the job."""
    assert run.hooks_left_running == [], "the cancelled job's pre-hook outlived it: %r" % run.hooks_left_running
    with open(run.hook_log) as f:
        calls = [line for line in f.read().split("\n") if line]
    print("hook calls: %r" % calls)
    assert calls.count("thaw end") == calls.count("freeze start"), (
        "every quiesce (freeze) that was started must be undone (thaw): %r" % calls
    )
