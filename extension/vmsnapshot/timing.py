"""Timed: how long a block took, in milliseconds, stored under a name in the job's timings."""

import time


class Timed(object):
    """`with Timed(timings, "freeze") as t:` stores the block's duration (ms) in timings["freeze"] when the
    block completes; a block that raises records nothing. `t.started` is the block's time.monotonic() start."""

    __slots__ = ("timings", "name", "started")

    def __init__(self, timings, name):
        self.timings = timings
        self.name = name
        self.started = None

    def __enter__(self):
        self.started = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.timings[self.name] = (time.monotonic() - self.started) * 1000
        return False
