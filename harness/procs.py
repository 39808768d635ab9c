"""Small process checks for tests: is a pid still a living process, wait for it to go, and a cancel that
arrives while the code under test is waiting (as the worker's SIGTERM handler raises into the job)."""

import contextlib
import signal
import time


def alive(pid):
    """True while `pid` is a process that is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (IOError, OSError):
        return False


def wait_gone(pid, seconds=3.0):
    """Wait up to `seconds` for `pid` to die (a zombie counts as dead). True when it did."""
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


class Cancelled(Exception):
    """Raised by cancel_after."""


@contextlib.contextmanager
def cancel_after(seconds):
    """Raise Cancelled in the main thread `seconds` into the block (SIGALRM); the timer is off after it."""

    def cancel(signum, frame):
        raise Cancelled()

    old = signal.signal(signal.SIGALRM, cancel)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
