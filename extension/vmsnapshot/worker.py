"""The snapshot job, run by the detached worker that enable starts.

Order: everything that can fail or touch the network happens before the freeze (settings checks,
status blob 'transitioning', script and freeze plans, a HEAD of every disk blob that also opens and
TLS-handshakes its connection, pre-scripts, syncfs). Inside the freeze: only the parked snapshot PUTs.
Logs are held in memory from just before the freeze until just after the thaw. The guardian process
thaws on request, when this process dies for any reason, and at its own hard deadline.
"""

import logging
import os
import signal
import time

from . import codes, fallback_thaw, hostsnapshot, mounts, script_config, scripts, settings, snapshot_method, workload
from .guardian_client import GuardianClient
from .redact import add_secret
from .snapshots import SnapshotBatch, outcome_code
from .status import Report, blob_report, write_local
from .storage import StorageClient, StorageError
from .syncfs import syncfs_all
from .timing import Timed

log = logging.getLogger(__name__)
FREEZE_MARGIN = 0.2  # share of the freeze cap kept back for the thaw
GUARDIAN_MAX_IDLE_S = 300.0  # a guardian waits 600 s for its freeze request; refresh well before that


def spec_method(spec):
    return spec.method or snapshot_method.ONLY_GUEST


class Cancelled(Exception):
    """Raised in the main thread by SIGTERM (disable, uninstall): unwinds through the thaw."""


def read_machine_id(path):
    try:
        with open(path) as f:
            return f.read(256).strip()
    except (IOError, OSError):
        return ""


def storage_details(selected):
    """Used bytes of the local file systems (statvfs only: no df, which hangs on dead NFS mounts)."""
    total = 0
    try:
        for m in selected:
            st = os.statvfs(m.mountpoint)
            total += (st.f_blocks - st.f_bfree) * st.f_frsize
    except OSError:
        return None
    return {
        "partitionCount": len(selected),
        "totalUsedSizeInBytes": total,
        "isStoragespacePresent": False,
        "isSizeComputationFailed": False,
    }


class Job(object):
    def __init__(self, henv, cfg, spec, logging_ctl, telemetry, state, phase_fd=None):
        self.henv = henv
        self.cfg = cfg
        self.spec = spec
        self.logs = logging_ctl
        self.telemetry = telemetry
        self.state = state
        self.report = Report(spec.seq, spec.locale, spec.task_id, spec.start_ticks, spec.vm_type)
        self.report.machine_id = read_machine_id(cfg.machine_identity)
        self.client = StorageClient(timeout=10.0, waagent_conf=cfg.waagent_conf)
        self.timings = {}
        self.phase_fd = phase_fd
        self.guardian = None
        self.guardian_started = None
        self.defer_cancel = False  # post scripts must finish: a cancel then waits for them
        self.cancel_pending = False
        self.pre = None  # the host's presnapshot answer, once asked
        add_secret(spec.task_token)

    def _on_sigterm(self, signum, frame):
        if self.defer_cancel:
            self.cancel_pending = True
            return
        raise Cancelled("cancelled by signal %d (disable or uninstall)" % signum)

    def phase(self, name):
        """Tell the supervisor where we are (a pipe: safe while frozen)."""
        if self.phase_fd is None:
            return
        try:
            os.write(self.phase_fd, (name + "\n").encode("ascii"))
        except OSError:
            pass

    # -- reporting --------------------------------------------------------------------------------
    def write_status(self):
        """The local status; a failure (a full file system) is logged, never stops the status blob."""
        try:
            write_local(self.henv.status_dir, self.spec.seq, self.report)
            return True
        except (IOError, OSError) as e:
            log.error("local status not written: %s", e)
            return False

    def upload_status(self):
        if not (self.spec.status_blob_uri and self.cfg.upload_status_and_log):
            return
        try:
            self.client.write_blob(self.spec.status_blob_uri, blob_report(self.report).encode("utf-8"))
        except (StorageError, OSError) as e:
            self.report.status_blob_error = True
            log.warning("status blob upload failed: %s", e)

    def upload_log(self):
        if not (self.spec.logs_blob_uri and self.cfg.upload_status_and_log and self.logs.memory):
            return
        try:
            self.client.write_blob(
                self.spec.logs_blob_uri,
                self.logs.memory.text().encode("utf-8"),
                content_type="text/plain",
                append_mode=True,
            )
        except (StorageError, OSError) as e:
            log.warning("log blob upload failed: %s", e)

    # -- the job ----------------------------------------------------------------------------------
    def run(self):
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self._run()
        except Cancelled as e:
            self.report.finish(codes.ERROR, str(e))
        except Exception as e:  # the status must always be written, never a traceback in it
            log.exception("snapshot job failed unexpectedly")
            self.report.finish(codes.ERROR, "internal error: %s" % type(e).__name__)
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.finish()

    def finish(self):
        self.phase("report")
        self.report.telemetry.update(("%sMs" % k, "%.1f" % v) for k, v in self.timings.items())
        self.write_status()
        self.upload_status()
        self.write_status()  # records a status blob upload error, if any
        log.info(
            "job seq %s ended: code %s (%s), consistency %s",
            self.spec.seq,
            self.report.code,
            codes.name_of(self.report.code),
            codes.CONSISTENCY_NAMES.get(self.report.consistency),
        )
        self.telemetry.event(
            "Enable",
            "job ended code=%s consistency=%s timings=%s" % (self.report.code, self.report.consistency, self.timings),
            "Informational" if self.report.code in codes.SUCCESS_CODES else "Error",
        )
        self.upload_log()
        self.telemetry.flush()
        self.client.close()

    def _run(self):
        spec, cfg = self.spec, self.cfg
        if not spec.is_snapshot:
            self.report.finish(codes.SUCCESS, "command '%s' needs no snapshot" % spec.command)
            return
        log.info(
            "job seq %s task %s: %d disk(s), fsfreeze=%s, method %s: %s",
            spec.seq,
            spec.task_id,
            len(spec.blob_uris),
            cfg.fsfreeze,
            spec.method,
            spec.method_reason,
        )
        self.report.telemetry.update(snapshotMethod=spec.method, snapshotMethodReason=spec.method_reason)
        self.upload_status()  # 'transitioning' before anything else, as the service expects

        # A missing script configuration means "no scripts", like a missing hook directory.
        script_plan = script_config.load_script_plan(
            config_path=cfg.script_config, hook_dir=cfg.hook_dir, config_required=False
        )
        if script_plan.error_code:
            self.report.finish(script_plan.error_code, script_plan.message)
            return
        plan = None
        freeze_wanted = cfg.fsfreeze and (not script_plan.enabled or script_plan.fs_freeze_enabled)
        if freeze_wanted:
            plan = mounts.pin(
                mounts.plan_freeze(mounts.read_mountinfo(), include=cfg.mounts_to_include, skip=cfg.mounts_to_skip)
            )
            for m, reason in plan.skipped:
                log.debug("not freezing %s: %s", m.mountpoint, reason)
            log.info("freeze plan: %s", ", ".join(m.mountpoint for m in plan.selected) or "(nothing)")
            self.report.storage_details = storage_details(plan.selected)

        try:
            batch = self.first_batch()
        except settings.SettingsError as e:  # 402 by the host's clock, or the host path unavailable
            self.report.finish(e.code, e.message)
            return
        self.phase("disk checks")
        with Timed(self.timings, "preflight"):
            preflight = batch.prepare()
        failed = [r for r in preflight if not r.ok]
        if failed and len(failed) == len(preflight) and spec_method(spec) == snapshot_method.FIRST_GUEST:
            log.info("every guest disk check failed: the host path instead (%s)", failed[0].message[:200])
            batch.cancel()
            batch, failed = self.host_instead_of_guest(batch, failed)
        if failed:
            self.note_creator(batch)
            batch.cancel()
            code = codes.SNAPSHOT_FAILED_NO_NETWORK if len(failed) == len(preflight) else codes.SNAPSHOT_PARTIAL_FAILURE
            self.report.finish(
                code, "disk blob check failed before freezing: %s: %s" % (failed[0].blob_uri, failed[0].message[:300])
            )
            return

        # The guardian starts (and opens every mount point) before the pre-scripts, so its start-up
        # does not lengthen the time an application stays quiesced.
        try:
            self.guardian = self.start_guardian(plan) if plan is not None and plan.selected else None
        except RuntimeError as e:
            batch.cancel()
            self.report.finish(codes.FREEZE_FAILED, "the freeze guardian could not start: %s" % e)
            return
        try:
            self._quiesce_freeze_snapshot(script_plan, batch, plan)
        finally:
            if self.guardian is not None:
                self.guardian.close()

    # -- snapshot paths (snapshot_method.py chose; hostsnapshot.py talks to the host) ---------------
    def first_batch(self):
        """The batch the job starts with. presnapshot, when wanted, runs here: before anything freezes."""
        method = spec_method(self.spec)
        if method in (snapshot_method.ONLY_HOST, snapshot_method.FIRST_HOST) or self.ade:
            pre = self.presnapshot()
            if method in (snapshot_method.ONLY_HOST, snapshot_method.FIRST_HOST) and pre.ok:
                return self.host_batch()
            if method == snapshot_method.ONLY_HOST:
                self.report.telemetry["snapshotCreator"] = "backupHostService"
                raise settings.SettingsError(
                    codes.SNAPSHOT_FAILED_NO_NETWORK,
                    "the host must take the snapshots "
                    "(%s) but its presnapshot failed: %s (code %s)"
                    % (self.spec.method_reason, pre.call.message, pre.call.code),
                )
            if method == snapshot_method.FIRST_HOST:
                log.info("host path unavailable (presnapshot code %s): guest snapshots", pre.call.code)
        return self.guest_batch()

    @property
    def ade(self):
        return (self.spec.included_disks or {}).get("isVMADEEnabled") is True

    def presnapshot(self):
        if self.pre is None:
            cfg, spec = self.cfg, self.spec
            self.pre = hostsnapshot.presnapshot(
                cfg.host_endpoint, spec.task_id, spec.task_token, self.ade, cfg.host_timeout
            )
            add_secret(self.pre.disk_encryption_settings)
            self.report.telemetry["hostStatusCodePreSnapshot"] = self.pre.call.code
            log.info(
                "presnapshot to %s: code %s%s",
                cfg.host_endpoint,
                self.pre.call.code,
                " (%s)" % self.pre.call.message if self.pre.call.message else "",
            )
            if self.ade and not self.pre.disk_encryption_settings:
                log.warning("ADE VM but the host sent no DiskEncryptionSettings")
            if self.pre.host_time is not None:  # "too late" by the host's clock, as the service judges it
                settings.parse_ticks(spec.start_ticks, self.pre.host_time, cfg.command_deadline_minutes)
        return self.pre

    def guest_batch(self):
        metadata = list(self.spec.backup_metadata)
        if self.ade and self.pre is not None and self.pre.disk_encryption_settings:
            metadata.append(["DiskEncryptionSettings", self.pre.disk_encryption_settings])
        return SnapshotBatch(self.client, self.spec.blob_uris, metadata)

    def host_batch(self):
        spec = self.spec
        disk_ids = snapshot_method.host_disk_ids(spec.included_disks)
        doc = hostsnapshot.dosnapshot_request(
            spec.task_id,
            spec.task_token,
            disk_ids,
            spec.backup_metadata,
            spec.included_disks,
            spec.dynamic_configs,
            self.pre,
        )
        return hostsnapshot.HostSnapshotBatch(self.cfg.host_endpoint, doc, disk_ids, min(10.0, self.cfg.host_timeout))

    def second_freeze_on_host(self, guest, guest_results, plan):
        """firstGuestThenHost: every guest snapshot failed and we have thawed; the host tries, frozen anew."""
        log.info("every guest snapshot failed: trying the host path with a second freeze")
        try:
            self.presnapshot()
        except settings.SettingsError as e:
            log.warning("host path not tried: %s", e.message)
            return guest, (guest_results, None, None)
        batch = self.host_batch()
        if not self.pre.ok or not batch.prepare()[0].ok:
            batch.cancel()
            log.warning("host path unavailable (presnapshot code %s)", self.pre.call.code)
            return guest, (guest_results, None, None)
        if self.guardian is not None:
            self.guardian.close()
            try:
                self.guardian = self.start_guardian(plan)
            except RuntimeError as e:
                batch.cancel()
                log.warning("host path not tried: the freeze guardian could not start again: %s", e)
                return guest, (guest_results, None, None)
        return batch, self._freeze_and_snapshot(batch, plan, self.guardian)

    def host_instead_of_guest(self, guest, failed):
        """firstGuestThenHost whose guest disks all failed their check: (batch, failed checks) to go on with."""
        try:
            pre = self.presnapshot()
        except settings.SettingsError as e:
            log.warning("host path not tried: %s", e.message)
            return guest, failed
        if not pre.ok:
            return guest, failed
        batch = self.host_batch()
        return batch, [r for r in batch.prepare() if not r.ok]

    def note_creator(self, batch):
        host = isinstance(batch, hostsnapshot.HostSnapshotBatch)
        self.report.telemetry["snapshotCreator"] = "backupHostService" if host else "guestExtension"
        if host:
            self.report.telemetry["hostStatusCodeDoSnapshot"] = batch.call.code

    def start_guardian(self, plan):
        cfg = self.cfg
        guardian = GuardianClient.for_plan(
            plan,
            hard_deadline_s=cfg.timeout,
            per_mount_timeout_s=cfg.freeze_wait,
            lock_path=cfg.safe_freeze_lock,
            lock_wait_s=cfg.lock_wait,
        )
        with Timed(self.timings, "guardianStart"):
            try:
                guardian.start()
            except RuntimeError:
                guardian.close()
                raise
        self.guardian_started = time.monotonic()
        job = self.state.job() or {}
        job.update(pid=os.getpid(), seq=self.spec.seq, guardian_pid=guardian.pid)
        self.state.set_job(**job)
        return guardian

    def _quiesce_freeze_snapshot(self, script_plan, batch, plan):
        pre = None
        if script_plan.enabled:
            with Timed(self.timings, "preScripts"):
                self.phase("pre-scripts")
                try:
                    pre = scripts.run_pre(script_plan)
                except Cancelled:
                    # The running script was killed; undo what the entered units did (their thaw), then stop.
                    self.run_post_scripts(script_plan)
                    raise
            if not pre.ok:
                log.warning("pre-scripts failed: %s", pre.message)
            take_snapshot, _ = scripts.snapshot_decision(script_plan, pre)
            if not take_snapshot:  # continueBackupOnFailure false, or the scripts were the only consistency
                self.run_post_scripts(script_plan)
                batch.cancel()
                self.report.finish(pre.code, pre.message)
                return
        db = workload.WorkloadStep(self.cfg)  # database branch: after pre scripts, released right after the thaw
        try:
            if self.guardian is not None and time.monotonic() - self.guardian_started > GUARDIAN_MAX_IDLE_S:
                self.guardian.close()  # very long pre-scripts: a fresh guardian rather than a stale one
                self.guardian = self.start_guardian(plan)
            db.enter([m.mountpoint for m in plan.selected] if self.guardian is not None else None, self.phase)
            if db.abort_code:  # OnAppFailureDoFsFreeze = false
                batch.cancel()
                results, consistency, failure = [], None, (db.abort_code, db.problem)
            else:  # the database stays quiesced across a second freeze for the host path, too
                results, consistency, failure = self._freeze_and_snapshot(batch, plan, self.guardian)
                if (
                    spec_method(self.spec) == snapshot_method.FIRST_GUEST
                    and failure is None
                    and isinstance(batch, SnapshotBatch)
                    and results
                    and not any(r.ok for r in results)
                ):
                    batch, (results, consistency, failure) = self.second_freeze_on_host(batch, results, plan)
        finally:
            db.release()
            self.timings.update(db.timings)
            if pre is not None:
                with Timed(self.timings, "postScripts"):
                    self.run_post_scripts(script_plan)
        self.note_creator(batch)
        if failure is not None:
            self.report.snapshot_info = [r.to_info() for r in batch.results]
            self.report.finish(failure[0], failure[1])
            return
        self.report.snapshot_info = [r.to_info() for r in results]
        code, detail = outcome_code(results)
        if code is not None:
            self.report.finish(code, detail)
            return
        if pre is not None and pre.ok:
            consistency = codes.CONSISTENCY_APP
        consistency, db_detail = db.outcome(consistency, pre is None or pre.ok)
        final = codes.SUCCESS_APP_CONSISTENT if consistency == codes.CONSISTENCY_APP else codes.SUCCESS
        self.report.finish(
            final,
            db_detail
            + "%d disk snapshot(s), %s, frozen window %.1f ms"
            % (len(results), codes.CONSISTENCY_NAMES[consistency], self.timings.get("frozenWindow", 0.0)),
            consistency,
        )

    def run_post_scripts(self, script_plan):
        """Post scripts always run to the end once pre scripts ran: a cancel waits for them."""
        self.phase("post-scripts")
        self.defer_cancel = True
        try:
            post = scripts.run_post(script_plan)
        finally:
            self.defer_cancel = False
        if not post.ok:
            log.warning("post-scripts failed: %s", post.message)
        return post

    def _freeze_and_snapshot(self, batch, plan, guardian):
        """Returns (results, consistency, failure) where failure is (code, detail) or None."""
        budget = self.cfg.timeout * (1 - FREEZE_MARGIN)
        if guardian is None:
            log.info("no file system to freeze: crash-consistent snapshot")
            self.phase("snapshots")
            return self._snapshot_unfrozen(batch, budget)
        points = guardian.mountpoints
        with Timed(self.timings, "syncfs"):
            self.phase("syncfs")
            syncfs_all(points)
        thawed = None
        self.logs.hold()
        try:
            with Timed(self.timings, "freeze") as freezing:
                self.phase(fallback_thaw.targets_line(guardian))  # the supervisor's own thaw, should both be stuck
                self.phase("freeze")
                frozen = guardian.freeze()
            if not frozen.ok:
                thawed = guardian.thaw()
                self.logs.release()
                return self._after_failed_freeze(batch, frozen, budget)
            thawed = self._snapshot_frozen(batch, guardian, frozen, freezing.started + budget)
        finally:
            if thawed is None:
                thawed = guardian.thaw()
            guardian.close()
            self.logs.release()
        return self._frozen_outcome(batch.results, thawed, points)

    def _snapshot_unfrozen(self, batch, budget):
        """Crash-consistent: nothing to freeze, or a failed freeze with canTakeCrashConsistentSnapshot."""
        with Timed(self.timings, "snapshot"):
            batch.fire(time.monotonic() + budget)
        return batch.results, codes.CONSISTENCY_CRASH, None

    def _after_failed_freeze(self, batch, frozen, budget):
        """Thawed already: a coded failure, or crash-consistent snapshots when the settings allow them."""
        can_crash = bool((self.spec.custom_settings or {}).get("canTakeCrashConsistentSnapshot"))
        log.warning("freeze failed (code %s): %s", frozen.code, frozen.failures)
        if not can_crash:
            batch.cancel()
            return (
                [],
                None,
                (
                    frozen.code or codes.FREEZE_FAILED,
                    "freeze failed: %s" % ("; ".join("%s: %s" % f for f in frozen.failures) or "unknown reason"),
                ),
            )
        return self._snapshot_unfrozen(batch, budget)

    def _snapshot_frozen(self, batch, guardian, frozen, deadline):
        """Inside the freeze: release the parked requests and ask for the thaw the moment the last answer is
        in. Only time stamps are taken before the thaw; the answers are looked at after it."""
        t_snap = time.monotonic()
        self.phase("snapshots while frozen")
        batch.fire(deadline)
        t_thaw = time.monotonic()
        self.phase("thaw")
        thawed = guardian.thaw()
        self.timings["snapshot"] = (t_thaw - t_snap) * 1000
        if frozen.frozen_at:
            # all file systems frozen -> thaw requested: the part of the window the snapshots cost
            self.timings["frozenHold"] = (t_thaw - frozen.frozen_at) * 1000
        return thawed

    def _frozen_outcome(self, results, thawed, points):
        """The window's timings, and whether the snapshots are file-system consistent."""
        sent = [r.sent_at for r in results if r.sent_at]
        if sent:
            self.timings["snapshotSendSpread"] = (max(sent) - min(sent)) * 1000
        self.timings["thaw"] = thawed.thaw_ms
        self.timings["frozenWindow"] = thawed.frozen_window_ms
        log.info(
            "frozen window %.1f ms (freeze %.1f ms, snapshots %.1f ms, thaw %.1f ms) over %s",
            thawed.frozen_window_ms,
            self.timings["freeze"],
            self.timings["snapshot"],
            thawed.thaw_ms,
            ", ".join(points),
        )
        if not thawed.ok:
            return (
                results,
                None,
                (
                    thawed.code or codes.ERROR,
                    "snapshots are inconsistent: the file systems were thawed by %s before "
                    "the snapshots finished" % thawed.reason,
                ),
            )
        return results, codes.CONSISTENCY_FS, None
