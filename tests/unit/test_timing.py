"""timing.Timed: a block's duration in ms under its name; nothing recorded for a block that raised."""

import time

import pytest
from vmsnapshot.timing import Timed


def test_records_the_duration_of_a_completed_block():
    timings = {}
    before = time.monotonic()
    with Timed(timings, "preflight") as t:
        time.sleep(0.02)
    assert before <= t.started and 20.0 <= timings["preflight"] < 1000.0


def test_a_block_that_raises_records_nothing_and_the_error_goes_on():
    timings = {}
    with pytest.raises(KeyError):
        with Timed(timings, "freeze"):
            raise KeyError("x")
    assert timings == {}
