"""Running the pre and post scripts of a ScriptPlan (read by vmsnapshot.script_config), and Microsoft's
rules for what a failed pre script means for the snapshot.

What Microsoft's runner got wrong and this one does not: each script is executed directly (its shebang
is honoured; `/bin/sh` only for a file without one or, for the JSON config, without an execute bit,
as Microsoft always ran `sh script`), in its own process group, killed as a group on timeout (SIGTERM,
then SIGKILL), with its output drained continuously (no pipe deadlock) and a bounded tail kept for the
log (vmsnapshot.subp.run_supervised); retries really re-run the script. Post scripts always run for every
entry whose pre phase ran (even if it failed). What the pre scripts leave running (the classic pattern: a
client session holding a database lock in the background) lives until the post phase has run, then every
process the scripts started is killed (vmsnapshot.leftovers).
"""

import errno
import logging
import os
import time

from . import codes, subp
from .leftovers import LeftoverReaper
from .script_config import open_checked_script

log = logging.getLogger(__name__)

# (pre code, post code) for each way one script can end badly, and for a phase out of time.
_FAILURE_CODES = {
    "failed": (codes.PRE_SCRIPT_FAILED, codes.POST_SCRIPT_FAILED),
    "timeout": (codes.PRE_SCRIPT_TIMEOUT, codes.POST_SCRIPT_TIMEOUT),
    "missing": (codes.PRE_SCRIPT_NOT_FOUND, codes.POST_SCRIPT_NOT_FOUND),
    "permission": (codes.PRE_SCRIPT_PERMISSION, codes.POST_SCRIPT_PERMISSION),
    "phase-timeout": (codes.PRE_PHASE_TIMEOUT, codes.POST_PHASE_TIMEOUT),
}
_PHASE_INDEX = {"pre": 0, "post": 1}


class ScriptResult(object):
    """Outcome of one script (all attempts)."""

    def __init__(self, name, path, args, phase, origin):
        self.name = name
        self.path = path
        self.args = list(args)
        self.phase = phase
        self.origin = origin
        self.ok = False
        self.code = None
        self.message = ""
        self.exit_code = None
        self.attempts = 0
        self.duration_ms = 0.0
        self.timed_out = False
        self.output_tail = ""
        self.output_bytes = 0

    def to_dict(self):
        return dict(self.__dict__)


class PhaseResult(object):
    """Outcome of run_pre / run_post.

    ok: every script that ran succeeded. code: None or the first failure's code. ran: at least one
    script was started. scripts: ScriptResult list in execution order.
    """

    def __init__(self, phase):
        self.phase = phase
        self.ok = True
        self.code = None
        self.message = ""
        self.ran = False
        self.scripts = []
        self.duration_ms = 0.0

    def fail(self, code, message):
        if self.ok:
            self.ok, self.code, self.message = False, code, message

    def to_dict(self):
        return {
            "phase": self.phase,
            "ok": self.ok,
            "code": self.code,
            "message": self.message,
            "ran": self.ran,
            "duration_ms": self.duration_ms,
            "scripts": [s.to_dict() for s in self.scripts],
        }


def exec_checked(script, script_fd, env, timeout_s):
    """Run the descriptor open_checked_script checked, as /proc/self/fd/N inherited by the child (a #!
    interpreter then reads the script through it): renaming or replacing anything on the path after the
    check changes nothing. Returns a subp.Supervised, or (kind, message) when it cannot be executed."""
    argv = ["/proc/self/fd/%d" % script_fd] + script.args
    if script.sh_if_not_executable and not os.fstat(script_fd).st_mode & 0o111:
        log.info("script %s has no execute bit: run with /bin/sh as Microsoft's runner did", script.path)
        argv = ["/bin/sh"] + argv
    try:
        try:
            return subp.run_supervised(argv, timeout_s=timeout_s, env=env, pass_fds=(script_fd,))
        except OSError as e:
            if e.errno != errno.ENOEXEC:
                raise
        return subp.run_supervised(
            ["/bin/sh"] + argv,
            timeout_s=timeout_s,
            env=env,  # no shebang: as a shell
            pass_fds=(script_fd,),
        )
    except OSError as e:
        return (
            "missing" if e.errno == errno.ENOENT else "permission",
            "cannot execute %s: %s" % (script.path, os.strerror(e.errno)),
        )


def _run_once(script, timeout_s, env, result, owner_uid, reaper):
    """Run one attempt. Sets result fields; returns 'ok', 'failed', 'timeout', 'missing', 'permission'.

    The script is opened and checked once and that very descriptor is executed (exec_checked). $0 is
    its /proc path, so the script's own path is given in VMSNAPSHOT_SCRIPT.
    """
    script_fd, problem = open_checked_script(script.path, owner_uid)
    if script_fd is None:
        result.message = problem[1]
        return problem[0]
    reaper.arm()
    try:
        done = exec_checked(script, script_fd, env, timeout_s)
    finally:
        os.close(script_fd)
    if isinstance(done, tuple):
        result.message = done[1]
        return done[0]
    result.duration_ms += round(done.duration_s * 1000.0, 3)
    result.output_tail = done.output_tail.decode("utf-8", "replace")
    result.output_bytes = done.output_bytes
    result.exit_code = done.exit_code
    if done.timed_out:
        result.timed_out = True
        result.message = "timed out after %.1f s; its process group was killed" % timeout_s
        return "timeout"
    if done.exit_code != 0:
        result.message = "exited with status %s" % done.exit_code
        return "failed"
    result.message = ""
    return "ok"


def _run_script(script, phase, name, plan, phase_deadline, reaper):
    idx = _PHASE_INDEX[phase]
    result = ScriptResult(name, script.path, script.args, phase, script.origin)
    env = dict(os.environ)
    env["VMSNAPSHOT_PHASE"] = phase
    env["VMSNAPSHOT_SCRIPT"] = script.path
    for attempt in range(1 + script.retries):
        left = phase_deadline - time.monotonic()
        if left <= 0:
            result.code = _FAILURE_CODES["phase-timeout"][idx]
            result.message = "the %s phase ran out of time (%.0f s)" % (phase, plan.host_timeout_s)
            return result
        result.attempts = attempt + 1
        result.timed_out = False
        outcome = _run_once(script, min(script.timeout_s, left), env, result, plan.owner_uid, reaper)
        log.info(
            "%s script %s %s: attempt %d/%d, %s in %.0f ms%s",
            phase,
            name,
            script.path,
            attempt + 1,
            1 + script.retries,
            outcome,
            result.duration_ms,
            (", output tail:\n" + result.output_tail[-1024:]) if result.output_tail.strip() else "",
        )
        if outcome == "ok":
            result.ok, result.code = True, None
            return result
        result.code = _FAILURE_CODES[outcome][idx]
        if outcome in ("missing", "permission"):
            return result
    return result


def _run_units(phase, plan, units, reaper, stop_at_failure):
    """Run the `phase` script of each unit, in the order given, into a PhaseResult."""
    result = PhaseResult(phase)
    t0 = time.monotonic()
    deadline = t0 + plan.host_timeout_s
    for unit in units:
        if phase == "pre":
            plan.entered.append(unit)  # before it runs: a cancel mid-script still undoes this unit
        script = unit.pre if phase == "pre" else unit.post
        if script is None:
            continue
        result.ran = True
        res = _run_script(script, phase, unit.name, plan, deadline, reaper)
        result.scripts.append(res)
        if not res.ok:
            result.fail(res.code, "%s script %s: %s" % (phase, script.path, res.message))
            if stop_at_failure:
                break
    result.duration_ms = round((time.monotonic() - t0) * 1000.0, 3)
    return result


def run_pre(plan):
    """Run the pre scripts in order; stop at the first failure. Records which units were entered."""
    plan.entered = []
    if not plan.enabled:
        phase = PhaseResult("pre")
        if plan.error_code is not None:
            phase.fail(plan.error_code, plan.message)
        return phase
    plan.reaper = LeftoverReaper()
    return _run_units("pre", plan, plan.units, plan.reaper, stop_at_failure=True)


def run_post(plan):
    """Run the post scripts, in reverse order, of every unit run_pre reached (all units if run_pre was
    not called). All of them run even when one fails; the first failure gives the code."""
    if not plan.enabled:
        return PhaseResult("post")
    units = plan.units if plan.entered is None else plan.entered
    reaper = plan.reaper or LeftoverReaper()  # one reaper: what the pre phase left is killed here too
    try:
        return _run_units("post", plan, list(reversed(units)), reaper, stop_at_failure=False)
    finally:
        reaper.kill_leftovers()
        plan.reaper = None


def snapshot_decision(plan, pre):
    """Microsoft's rules after the pre phase. Returns (take_snapshot, freeze).

    Scripts succeeded (or none): snapshot; freeze unless fsFreezeEnabled is false.
    A script failed: no snapshot unless continueBackupOnFailure; and with fsFreezeEnabled false a failed
    script means no backup at all (the scripts were the only consistency mechanism).
    """
    if pre.ok:
        return True, plan.fs_freeze_enabled
    if not plan.continue_on_failure or not plan.fs_freeze_enabled:
        return False, False
    return True, True
