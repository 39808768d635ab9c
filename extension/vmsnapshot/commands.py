"""The five agent commands plus the detached worker. Each returns a process exit code.

enable is fast and idempotent: it validates the settings, writes a 'transitioning' status, records the
sequence number and task id, and hands the validated job to a worker in its own session over a pipe
(the decrypted settings never touch disk), returning well within a second.
"""

import json
import logging
import os
import signal
import sys
import time

from . import agentcontract, codes, config, handlerenv, joblog, settings, subp, vm_identity
from .fileutil import atomic_write, ensure_dir, unsafe_directory
from .state import State, pid_alive, process_start_time
from .status import Report, status_word, write_local
from .telemetry import Telemetry

log = logging.getLogger(__name__)
STOP_WAIT_S = 15.0
FROZEN_PHASES = ("freeze", "snapshots while frozen", "thaw")  # the worker's phase names (worker.Job.phase)


def _context(with_memory=False):
    henv = handlerenv.load()
    try:
        cfg = config.load()
        cfg_error = None
    except config.ConfigError as e:
        cfg, cfg_error = config.defaults(), str(e)
    logs = joblog.setup(henv.log_dir, cfg.log_max_bytes, cfg.log_backups, with_memory=with_memory)
    return henv, cfg, cfg_error, logs


def cert_dir(henv, cfg):
    return cfg.certificate_dir or henv.lib_dir


def install(argv):
    """Prepare state and the default configuration (never overwritten); no network."""
    henv, cfg, cfg_error, _ = _context()
    ensure_dir(henv.status_dir, 0o700)
    if not os.path.exists(cfg.path):
        try:
            ensure_dir(os.path.dirname(cfg.path), 0o755)
            atomic_write(cfg.path, config.DEFAULT_FILE, 0o644)
            log.info("install: wrote default configuration %s", cfg.path)
        except (IOError, OSError) as e:
            log.warning("install: cannot write default configuration %s: %s", cfg.path, e)
    try:
        ensure_dir(cfg.hook_dir, 0o700)
    except (IOError, OSError) as e:
        log.warning("install: cannot create hook directory %s: %s", cfg.hook_dir, e)
    log.info("install done (version %s)%s", henv.version, "; config error: " + cfg_error if cfg_error else "")
    print("vmsnapshot %s installed" % henv.version)
    return 0


def _write_error(henv, seq, code, message, locale=None, task_id=None):
    report = Report(seq, locale, task_id)
    report.finish(code, message)
    write_local(henv.status_dir, seq, report)
    log.error("seq %s: %s (code %s)", seq, message, code)


def enable(argv):
    henv, cfg, cfg_error, _ = _context()
    seq = handlerenv.current_seq(henv)
    state = State(henv.base_dir)
    ensure_dir(henv.status_dir, 0o700)
    lock = state.lock()
    try:
        vm_identity.forget_other_vm(state, cfg.hosting_environment)
        if state.mrseq() == seq:
            return _enable_again(henv, state, seq)
        state.set_mrseq(seq)  # before anything else: an agent restart must never replay this seq
        if cfg_error:
            _write_error(henv, seq, codes.BAD_PARAMETER, cfg_error)
            return 0
        handler = {}
        try:
            handler = settings.read_settings_file(henv.settings_file(seq))
            public = handler.get("publicSettings") or {}
            private = settings.decrypt_protected(handler, cert_dir(henv, cfg))
            spec = settings.validate(
                seq, public, private, deadline_minutes=cfg.command_deadline_minutes, config_method=cfg.snapshot_method
            )
        except (settings.SettingsError, RecursionError, MemoryError) as e:
            e = (
                e
                if isinstance(e, settings.SettingsError)
                else settings.bad("settings", "are too deeply nested or too large to process")
            )
            public = handler.get("publicSettings")
            locale = public.get("locale") if isinstance(public, dict) else None
            _write_error(henv, seq, e.code, e.message, locale if isinstance(locale, str) else None)
            return 0
        if spec.task_id and spec.task_id == state.last_task():
            report = Report(seq, spec.locale, spec.task_id)
            report.finish(codes.ALREADY_PROCESSED, "task %s already ran" % spec.task_id)
            write_local(henv.status_dir, seq, report)
            log.info("seq %s: task %s already processed, no new job", seq, spec.task_id)
            return 0
        if spec.task_id:
            state.set_last_task(spec.task_id)
        report = Report(seq, spec.locale, spec.task_id, spec.start_ticks, spec.vm_type)
        write_local(henv.status_dir, seq, report)
        pid = _start_worker(henv, spec)
        state.set_job(seq=seq, supervisor=pid, supervisor_start=process_start_time(pid))
        log.info("seq %s: job supervisor %d started for task %s", seq, pid, spec.task_id)
        print("vmsnapshot: job for sequence %s started" % seq)
        return 0
    finally:
        State.unlock(lock)


def _enable_again(henv, state, seq):
    """Same sequence number again (goal state refresh, agent restart): no second job. A status left
    'transitioning' by a job that no longer runs (a reboot mid-job) becomes a terminal error."""
    job = state.job()
    running = bool(job and job.get("seq") == seq and (pid_alive(job.get("pid")) or pid_alive(job.get("supervisor"))))
    current = _status_of(henv, seq)
    if running:
        log.info("seq %s: job still running; nothing to do", seq)
        return 0
    if current in agentcontract.TERMINAL_STATUSES:
        log.info("seq %s already processed; status kept", seq)
        return 0
    _write_error(
        henv,
        seq,
        codes.ERROR,
        "the job for this sequence number was interrupted before it finished "
        "(for example by a reboot); the next backup will run normally",
    )
    return 0


def _status_of(henv, seq):
    """'transitioning', 'success', 'error', ... of the local status file, None when unreadable."""
    try:
        with open(henv.status_file(seq)) as f:
            return json.load(f)[0]["status"]["status"]
    except (IOError, OSError, ValueError, LookupError, TypeError):
        return None


def _start_worker(henv, spec):
    """Start the supervisor (own session), which starts the worker; both outlive this command."""
    proc = subp.spawn(
        [sys.executable, "-B", "-m", "vmsnapshot", "supervise"],
        data=spec.to_wire().encode("utf-8"),
        cwd=henv.base_dir,
        env=subp.runtime_env(),
    )
    return proc.pid


def supervise(argv):
    """Run the worker and, should it die abnormally (SIGKILL, OOM, crash), write a status saying so.

    The worker reports its phase over a pipe (no disk writes while frozen), so the status can say
    where it died. Its freeze guardian has already thawed by then (it watches the worker's socket).
    """
    started, stop = [], []

    def on_sigterm(signum, frame):  # disable/uninstall: stop the worker once (it unwinds and reports)
        if not stop:
            stop.append(signum)
            if started:
                started[0].send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    from . import fallback_thaw  # imported here so enable stays fast

    henv, _, _, _ = _context()
    wire = sys.stdin.read()
    sys.stdin.close()
    spec = settings.JobSpec.from_wire(wire)
    if stop:
        _write_error(
            henv,
            spec.seq,
            codes.ERROR,
            "the job was cancelled (disable or uninstall) before it started",
            spec.locale,
            spec.task_id,
        )
        return 0
    read_fd, write_fd = os.pipe()
    # In our process group (a kill of the supervisor's group reaches it), fed its JobSpec on stdin.
    proc = subp.spawn(
        [sys.executable, "-B", "-m", "vmsnapshot", "worker", "--phase-fd", str(write_fd)],
        data=wire.encode("utf-8"),
        pass_fds=(write_fd,),
        cwd=henv.base_dir,
        new_session=False,
    )
    started.append(proc)
    if stop:
        proc.send_signal(signal.SIGTERM)  # the signal came between the check above and the spawn
    os.close(write_fd)
    wire = None
    phase, buf, targets = "starting", b"", None
    with os.fdopen(read_fd, "rb", 0) as phases:
        while True:
            chunk = phases.read(256)
            if not chunk:
                break
            buf += chunk
            lines = buf.split(b"\n")
            buf = lines.pop()
            for line in lines:
                text = line.decode("ascii", "replace")
                targets = fallback_thaw.parse_targets_line(text) or targets
                if not text.startswith(fallback_thaw.TARGETS_PREFIX):
                    phase = text
    thawed = None
    if phase in FROZEN_PHASES and targets:
        # The worker died while frozen. Its guardian thaws on end-of-file unless it cannot run (stopped, or
        # killed as well): thaw here too, before anything (our own log included) writes to those disks.
        thawed = fallback_thaw.thaw_targets(targets)
    _, wait_status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = -os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else os.WEXITSTATUS(wait_status)
    log.info(
        "worker %d resources: peak_rss_kb=%d cpu_s=%.3f", proc.pid, usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    )
    State(henv.base_dir).clear_job()
    if thawed is not None:
        log.warning("worker died during '%s': supervisor thaw %s", phase, thawed)
    if code != 0:
        how = "was killed by signal %d" % -code if code < 0 else "exited with %d" % code
        by = (
            "its guardian"
            if thawed is None
            else "its guardian and by the supervisor (%s)" % ", ".join("%s: %s" % t for t in thawed)
        )
        _write_error(
            henv,
            spec.seq,
            codes.ERROR,
            "the snapshot job %s during '%s'; any frozen file system was thawed by %s" % (how, phase, by),
            spec.locale,
            spec.task_id,
        )
    return 0


def worker(argv):
    """The detached job: reads its JobSpec from stdin, runs it, writes the final status."""
    from .worker import Job  # imported here so enable stays fast

    phase_fd = int(argv[argv.index("--phase-fd") + 1]) if "--phase-fd" in argv else None
    henv, cfg, _, logs = _context(with_memory=True)
    spec = settings.JobSpec.from_wire(sys.stdin.read())
    sys.stdin.close()
    state = State(henv.base_dir)
    job = state.job() or {}
    job.update(pid=os.getpid(), seq=spec.seq, start=process_start_time(os.getpid()))
    state.set_job(**job)
    try:
        Job(henv, cfg, spec, logs, Telemetry(henv.events_dir, spec.task_id), state, phase_fd).run()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return 0


def snapshot(argv):
    """A manual snapshot job in the foreground, outside the agent: `vmsnapshot snapshot --settings FILE`.

    FILE holds {"publicSettings": {...}, "protectedSettings": {...}} in clear text, so it must be owned by
    root (or the caller) and readable by nobody else. Status files go to --status-dir (default: a
    `status` directory next to FILE). Prints the final status and exits 0 on success, 1 otherwise.
    """
    from .worker import Job

    if "--settings" not in argv or argv.index("--settings") + 1 >= len(argv):
        sys.stderr.write("usage: vmsnapshot snapshot --settings FILE [--status-dir DIR] [--seq N]\n")
        return 2
    path = argv[argv.index("--settings") + 1]
    try:
        st = os.stat(path)
        if st.st_uid not in (0, os.getuid()) or st.st_mode & 0o077:
            sys.stderr.write(
                "vmsnapshot: %s must be owned by you or root and not readable by others "
                "(chmod 600): it holds SAS URIs\n" % path
            )
            return 2
        with open(path) as f:
            doc = settings.parse_json("settings file", f.read(settings.MAX_SETTINGS_BYTES + 1))
    except (IOError, OSError, ValueError, settings.SettingsError) as e:
        sys.stderr.write("vmsnapshot: cannot read %s: %s\n" % (path, getattr(e, "strerror", None) or e))
        return 2
    seq = int(argv[argv.index("--seq") + 1]) if "--seq" in argv else 0
    status_dir = (
        argv[argv.index("--status-dir") + 1]
        if "--status-dir" in argv
        else os.path.join(os.path.dirname(os.path.abspath(path)), "status")
    )
    try:
        henv = handlerenv.load(os.path.dirname(os.path.abspath(path)))
    except handlerenv.HandlerEnvError as e:
        sys.stderr.write("vmsnapshot: %s\n" % e)
        return 2
    henv.status_dir = status_dir
    unsafe = _unsafe_paths(henv, path)
    if unsafe:
        sys.stderr.write(
            "vmsnapshot: refusing to run as root with files in a directory others control: %s "
            "(every directory from it up to / must be owned by root and not group/world "
            "writable)\n" % unsafe
        )
        return 3
    try:
        cfg = config.load()
        spec = settings.validate(
            seq,
            doc.get("publicSettings"),
            doc.get("protectedSettings") or {},
            deadline_minutes=cfg.command_deadline_minutes,
            config_method=cfg.snapshot_method,
        )
    except (config.ConfigError, settings.SettingsError, AttributeError) as e:
        sys.stderr.write("vmsnapshot: invalid settings: %s\n" % (getattr(e, "message", None) or e))
        return 2
    logs = joblog.setup(henv.log_dir, cfg.log_max_bytes, cfg.log_backups, with_memory=True)
    job = Job(henv, cfg, spec, logs, Telemetry(henv.events_dir, spec.task_id), State(henv.base_dir))
    job.run()
    lang, text = job.report.message()
    print("%s (code %s): %s" % (status_word(job.report.code), job.report.code, text))
    print("status file: %s" % henv.status_file(seq))
    return 0 if job.report.code in codes.SUCCESS_CODES else 1


def _unsafe_paths(henv, settings_path):
    """Why a root `snapshot` must not use these paths (None when it may): the settings file's directory
    decides the handler, log, status and events directories, so a user who controls any of them could
    make root write anywhere. Not checked for other users: they can only write where they already can."""
    if os.geteuid() != 0:
        return None
    for directory in (
        os.path.dirname(os.path.abspath(settings_path)),
        henv.base_dir,
        henv.log_dir,
        henv.status_dir,
        henv.events_dir,
    ):
        reason = directory and unsafe_directory(directory)
        if reason:
            return reason
    return None


def wait_gone(pid, seconds):
    """Wait up to `seconds` for `pid` to exit; True when it did."""
    deadline = time.monotonic() + seconds
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not pid_alive(pid)


def stop_running_job(henv, wait_s=STOP_WAIT_S):
    """Stop a running or starting job and make sure its guardian has thawed. Returns a short description.

    The caller holds the enable lock (State.lock), so a job enable has started is already recorded in
    job.json with its supervisor. The supervisor is asked to stop (SIGTERM): it stops its worker, or
    never starts it; the worker unwinds through its thaw and post scripts and writes its status. Only
    when that takes longer than wait_s are the worker and the supervisor killed (the guardian, in its own
    session, then sees end-of-file and thaws).
    """
    state = State(henv.base_dir)
    job = state.job()
    if not job:
        return "no job running"
    supervisor = job.get("supervisor")
    if supervisor and job.get("supervisor_start") and process_start_time(supervisor) != job["supervisor_start"]:
        supervisor = None  # pid reused by something else
    supervised = bool(supervisor and pid_alive(supervisor))
    if supervised:
        os.kill(supervisor, signal.SIGTERM)
    job = state.job() or job
    pid = _job_worker(job)
    if pid and not supervised:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    if supervised:
        wait_gone(supervisor, wait_s)
    pid = _job_worker(state.job() or job) or pid
    if pid and not wait_gone(pid, max(0.0, deadline - time.monotonic())):
        os.kill(pid, signal.SIGKILL)  # its guardian sees end-of-file and thaws at once
    if supervised and not wait_gone(supervisor, 0.1):
        subp.kill_group(supervisor, signal.SIGKILL)  # the supervisor's group: it and a worker not yet recorded
        wait_gone(supervisor, 5.0)
    guardian = (state.job() or {}).get("guardian_pid") or job.get("guardian_pid")
    if guardian and not wait_gone(guardian, 5.0):
        os.kill(guardian, signal.SIGTERM)
    seq = job.get("seq")
    if seq is not None and _status_of(henv, seq) == agentcontract.STATUS_TRANSITIONING:  # stopped before reporting
        _write_error(henv, seq, codes.ERROR, "the job was cancelled (disable or uninstall) before it finished")
    state.clear_job()
    return "job %s stopped" % (pid or supervisor)


def _job_worker(job):
    pid = job.get("pid")
    if pid and job.get("start") and process_start_time(pid) != job["start"]:
        return None  # pid reused by something else
    return pid if pid and pid_alive(pid) else None


def _earlier_enables(henv):
    """Pids of this extension's enable commands started no later than this process (the launcher script
    or the runtime, which runs in the extension directory), still running."""
    base = os.path.realpath(henv.base_dir)
    launcher = os.path.join(base, "bin", "handle.sh")
    me = os.getpid()
    ours = process_start_time(me) or 0
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                args = f.read().decode("utf-8", "replace").split("\0")
            cwd = os.path.realpath(os.readlink("/proc/%s/cwd" % name)) if "vmsnapshot" in args else None
        except (IOError, OSError):
            continue
        runtime = cwd == base and args[args.index("vmsnapshot") + 1 : args.index("vmsnapshot") + 2] == ["enable"]
        shell = any(
            a.startswith(launcher) and (a.endswith(" enable") or args[i + 1 : i + 2] == ["enable"])
            for i, a in enumerate(args)
        )
        started = process_start_time(int(name))
        if (runtime or shell) and started is not None and started <= ours:
            found.append(int(name))
    return found


def _wait_for_earlier_enables(henv, wait_s=STOP_WAIT_S):
    """An enable the agent started before this disable may not hold its lock yet: let it finish (it only
    records and starts a job, in well under a second) so that its job is the one stopped."""
    deadline = time.monotonic() + wait_s
    pending = _earlier_enables(henv)
    while pending and time.monotonic() < deadline:
        time.sleep(0.02)
        pending = [p for p in pending if pid_alive(p)]
    if pending:
        log.warning("enable %s still running after %.0f s; stopping what it started so far", pending, wait_s)


def _stop_under_lock(henv, then=None):
    """stop_running_job holding the lock enable takes, after any enable started before us has finished:
    the job it started is seen and stopped, and no enable can start one while this runs."""
    _wait_for_earlier_enables(henv)
    state = State(henv.base_dir)
    lock = state.lock()
    try:
        outcome = stop_running_job(henv)
        if then is not None:
            then(state)
        return outcome
    finally:
        State.unlock(lock)


def disable(argv):
    henv, _, _, _ = _context()
    outcome = _stop_under_lock(henv)
    log.info("disable: %s", outcome)
    print("vmsnapshot disabled: %s" % outcome)
    return 0


def uninstall(argv):
    henv, _, _, _ = _context()
    outcome = _stop_under_lock(henv, then=lambda state: state.remove_all())
    log.info("uninstall: %s; state removed, configuration kept", outcome)
    print("vmsnapshot uninstalled")
    return 0


def update(argv):
    """New version, before the old one is uninstalled: carry the task identity over (the agent copies
    mrseq and status/* itself)."""
    henv, _, _, _ = _context()
    old_version = os.environ.get(agentcontract.ENV_UPDATING_FROM_VERSION)
    if old_version:
        old_dir = os.path.join(henv.lib_dir, "%s-%s" % (henv.name, old_version))
        old_task = State(old_dir).last_task()
        if old_task and not State(henv.base_dir).last_task():
            State(henv.base_dir).set_last_task(old_task)
        log.info("update from %s to %s: state carried over", old_version, henv.version)
    print("vmsnapshot updated to %s" % henv.version)
    return 0
