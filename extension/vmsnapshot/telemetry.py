"""Telemetry events for the agent's extension pipeline: 8 string fields, numeric file names.

Events are collected in memory during a job and written once, outside the frozen window.
"""

import datetime
import json
import os
import threading
import time

from .fileutil import atomic_write
from .redact import clean

MESSAGE_LIMIT = 3000
LEVELS = ("Critical", "Error", "Warning", "Verbose", "Informational", "LogAlways")


class Telemetry(object):
    def __init__(self, events_dir, operation_id, max_events=300):
        self.events_dir = events_dir
        self.operation_id = operation_id or ""
        self.max_events = max_events
        self.pending = []
        self._lock = threading.Lock()

    def event(self, task, message, level="Informational"):
        message = clean(message) or "-"
        stamp = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        with self._lock:
            for start in range(0, len(message), MESSAGE_LIMIT):
                if len(self.pending) >= self.max_events:
                    return
                self.pending.append(
                    {
                        "Version": "1.0",
                        "Timestamp": stamp,
                        "TaskName": task,
                        "EventLevel": level if level in LEVELS else "Informational",
                        "Message": message[start : start + MESSAGE_LIMIT],
                        "EventPid": str(os.getpid()),
                        "EventTid": str(threading.current_thread().ident or 0),
                        "OperationId": self.operation_id,
                    }
                )

    def flush(self):
        """Write pending events as one `<ns>.json` file; never raises (telemetry must not fail a job)."""
        with self._lock:
            events, self.pending = self.pending, []
        if not events or not self.events_dir or not os.path.isdir(self.events_dir):
            return None
        path = os.path.join(self.events_dir, "%d.json" % int(time.time() * 1e9))
        try:
            atomic_write(path, json.dumps(events), 0o600)
            return path
        except (IOError, OSError):
            return None
