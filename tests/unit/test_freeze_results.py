"""vmsnapshot.freeze_results: the freeze and thaw results built from the guardian's messages."""

import pytest
from vmsnapshot.freeze_results import FreezeOutcome, ThawOutcome


def test_freeze_outcome_from_a_frozen_message():
    msg = {
        "ev": "frozen",
        "ok": True,
        "frozen": ["/b", "/"],
        "failures": [],
        "skipped": [["/t", "tmpfs"]],
        "freeze_ms": 3.5,
        "lock_held": 1,
        "lock_wait_ms": 0.2,
        "freeze_started_at": 10.0,
        "frozen_at": 10.1,
    }
    r = FreezeOutcome.from_message(msg)
    assert (r.ok, r.code, r.frozen, r.skipped, r.lock_held, r.message) == (
        True,
        None,
        ["/b", "/"],
        [("/t", "tmpfs")],
        True,
        "",
    )
    assert list(r.to_dict()) == [
        "ok",
        "code",
        "frozen",
        "failures",
        "skipped",
        "freeze_ms",
        "lock_held",
        "lock_wait_ms",
        "freeze_started_at",
        "frozen_at",
        "message",
    ]


def test_freeze_outcome_defaults_and_failures():
    r = FreezeOutcome(ok=False, code=123, failures=[["/m", "cannot open"]], message="x")
    assert (r.frozen, r.failures, r.skipped, r.freeze_ms, r.lock_held) == ([], [("/m", "cannot open")], [], 0.0, False)
    assert FreezeOutcome.from_message({"ev": "frozen"}).to_dict() == FreezeOutcome(ok=False).to_dict()
    assert repr(r).startswith("FreezeOutcome({'ok': False, 'code': 123,")


def test_lists_are_copies():
    frozen = ["/a"]
    r = FreezeOutcome(ok=True, frozen=frozen)
    frozen.append("/b")
    assert r.frozen == ["/a"]


@pytest.mark.parametrize(
    "reason, failures, ok, code",
    [
        ("requested", [], True, None),
        ("not-frozen", [], True, None),
        ("requested", [["/m", "FITHAW: EIO"]], False, None),
        ("deadline", [], False, 2),
        ("signal", [], False, 2),
        ("peer-eof", [], False, 2),
    ],
)
def test_thaw_outcome_is_inconsistent_unless_thawed_on_request(reason, failures, ok, code):
    r = ThawOutcome.from_message(
        {
            "ev": "thawed",
            "reason": reason,
            "thaw_failures": failures,
            "thawed": ["/"],
            "thaw_ms": 1.0,
            "frozen_window_ms": 20.0,
            "thawed_at": 5.0,
            "code": 99,
        }
    )
    assert (r.ok, r.code, r.reason, r.thawed, r.frozen_window_ms) == (ok, code, reason, ["/"], 20.0)
    assert r.thaw_failures == [tuple(f) for f in failures]
    assert list(r.to_dict()) == [
        "ok",
        "code",
        "reason",
        "thawed",
        "thaw_failures",
        "thaw_ms",
        "frozen_window_ms",
        "thawed_at",
        "message",
    ]


def test_an_unknown_field_is_a_programming_error():
    with pytest.raises(TypeError) as e:
        ThawOutcome(ok=True, frozen=["/"])
    assert "ThawOutcome has no field frozen" in str(e.value)
