"""Logging for commands and jobs: redacted always, bounded on disk, held in memory while frozen.

- The rotating file `<logFolder>/vmsnapshot.log` is capped (LogMaxBytes x LogBackups).
- Every record passes through SAS redaction before any handler sees it.
- `hold()` / `release()` bracket the frozen window: nothing is written to disk in between.
- The job's own lines are also kept in memory (bounded) for the upload to logsBlobUri.
"""

import logging
import logging.handlers
import os
import threading

from .fileutil import ensure_dir
from .redact import redact

LOGGER_NAME = "vmsnapshot"
FORMAT = "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"
JOB_BUFFER_LIMIT = 2 * 1024 * 1024


class RedactFilter(logging.Filter):
    def filter(self, record):
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class HoldingHandler(logging.Handler):
    """Wraps a file handler; while held, records queue in memory instead of touching the disk."""

    def __init__(self, inner):
        logging.Handler.__init__(self)
        self.inner = inner
        self.held = False
        self.pending = []
        self._guard = threading.Lock()

    def emit(self, record):
        with self._guard:
            if self.held:
                self.pending.append(record)
                return
        self.inner.handle(record)

    def hold(self):
        with self._guard:
            self.held = True

    def release(self):
        with self._guard:
            self.held = False
            pending, self.pending = self.pending, []
        for record in pending:
            self.inner.handle(record)

    def close(self):
        self.release()
        self.inner.close()
        logging.Handler.close(self)


class MemoryHandler(logging.Handler):
    """The job's log lines, bounded, for upload to logsBlobUri."""

    def __init__(self, limit=JOB_BUFFER_LIMIT):
        logging.Handler.__init__(self)
        self.lines = []
        self.size = 0
        self.limit = limit
        self.dropped = 0

    def emit(self, record):
        line = self.format(record)
        if self.size + len(line) > self.limit:
            self.dropped += 1
            return
        self.lines.append(line)
        self.size += len(line) + 1

    def text(self):
        tail = "\n[%d lines dropped: job log limit]" % self.dropped if self.dropped else ""
        return "\n".join(self.lines) + tail + "\n"


class JobLogging(object):
    def __init__(self, holder, memory):
        self.holder = holder
        self.memory = memory

    def hold(self):
        if self.holder:
            self.holder.hold()

    def release(self):
        if self.holder:
            self.holder.release()


def setup(log_dir, max_bytes=1048576, backups=3, level=logging.INFO, with_memory=False):
    """Configure the `vmsnapshot` logger; returns a JobLogging to hold/release and read the job log."""
    logger = logging.getLogger(LOGGER_NAME)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    logger.setLevel(level)
    logger.propagate = False
    formatter = logging.Formatter(FORMAT, DATEFMT)
    redactor = RedactFilter()
    logger.filters = [redactor]
    holder = None
    try:
        ensure_dir(log_dir, 0o755)
        inner = logging.handlers.RotatingFileHandler(os.path.join(log_dir, "vmsnapshot.log"),
                                                     maxBytes=max_bytes, backupCount=backups)
        inner.setFormatter(formatter)
        holder = HoldingHandler(inner)
        logger.addHandler(holder)
    except (IOError, OSError):
        logger.addHandler(logging.NullHandler())
    memory = None
    if with_memory:
        memory = MemoryHandler()
        memory.setFormatter(formatter)
        logger.addHandler(memory)
    return JobLogging(holder, memory)
