"""Logging for commands and jobs: redacted always, bounded on disk, held in memory while frozen.

- The rotating file `<logFolder>/extension.log` (the name operators' runbooks look for) is capped
  (LogMaxBytes x LogBackups), mode 0600, and never opened through a symlink.
- Every record passes through redaction (SAS signatures, URI userinfo) and control-character escaping
  before any handler sees it: a value can never forge a log line.
- `hold()` / `release()` bracket the frozen window: nothing is written to disk in between.
- The job's own lines are also kept in memory (bounded) for the upload to logsBlobUri.
"""

import logging
import logging.handlers
import os
import threading

from .fileutil import ensure_dir, open_append
from .redact import clean

LOGGER_NAME = "vmsnapshot"
FORMAT = "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%dT%H:%M:%S"
JOB_BUFFER_LIMIT = 2 * 1024 * 1024
LOG_NAME = "extension.log"


class CleanFormatter(logging.Formatter):
    """Formats a copy of the record whose message and traceback are redacted and control-escaped.

    A formatter (not a logger filter, which child loggers bypass) so every handler's output is clean."""

    def format(self, record):
        record = logging.makeLogRecord(record.__dict__)
        record.msg = clean(record.getMessage())
        record.args = None
        if record.exc_info or record.exc_text:
            text = record.exc_text or self.formatException(record.exc_info)
            record.exc_text = "\n".join(clean(line) for line in text.splitlines())
            record.exc_info = None
        return logging.Formatter.format(self, record)


class SafeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Rotating log file opened with O_NOFOLLOW, mode 0600: a planted symlink is refused, not followed."""

    def _open(self):
        return os.fdopen(open_append(self.baseFilename, 0o600), "a", encoding="utf-8", errors="replace")


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
    formatter = CleanFormatter(FORMAT, DATEFMT)
    logger.filters = []
    holder = None
    try:
        ensure_dir(log_dir, 0o755)
        inner = SafeRotatingFileHandler(os.path.join(log_dir, LOG_NAME), maxBytes=max_bytes, backupCount=backups)
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
