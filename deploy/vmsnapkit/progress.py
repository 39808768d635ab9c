"""A one-line progress bar on a terminal (stderr), silent when stderr is piped or redirected."""

import threading
import time


class Progress:
    def __init__(self, label, total=None, stream=None, enabled=True, min_interval=0.1):
        import sys

        self.stream = stream or sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.label, self.total, self.done = label, total, 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._min_interval = min_interval

    def advance(self, n=1):
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.enabled and now - self._last >= self._min_interval:
                self._last = now
                self._draw()

    def _draw(self):
        if self.total:
            width = 30
            filled = int(width * min(self.done, self.total) / self.total)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total}")
        else:
            self.stream.write(f"\r{self.label} {self.done}")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
