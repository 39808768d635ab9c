"""What a freeze and a thaw came to, as the worker reads them from the guardian's messages."""

from vmsnapshot.freezeproto import CODE_INCONSISTENT


def _pairs(items):
    return [tuple(i) for i in items]


class _Outcome(object):
    """A result with `ok` and the fields of FIELDS: (name, default, conversion or None), in report order."""

    FIELDS = ()

    def __init__(self, ok, **values):
        self.ok = ok
        for name, default, convert in self.FIELDS:
            value = values.pop(name, default)
            setattr(self, name, convert(value) if convert else value)
        if values:
            raise TypeError("%s has no field %s" % (type(self).__name__, ", ".join(sorted(values))))

    @classmethod
    def _fields_of(cls, msg):
        return dict((name, msg.get(name, default)) for name, default, _ in cls.FIELDS)

    def to_dict(self):
        return dict([("ok", self.ok)] + [(name, getattr(self, name)) for name, _, _ in self.FIELDS])

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.to_dict())


class FreezeOutcome(_Outcome):
    """Result of GuardianClient.freeze().

    ok: every selected filesystem is frozen. code: None, 121 (FIFREEZE failed, e.g. EBUSY: already
    frozen by someone else), 122 (FIFREEZE did not return in time), 123 (a mount point could not be
    opened). frozen: mount points frozen by us, in freeze order. failures: [(mountpoint, reason)].
    skipped: [(mountpoint, reason)] for filesystems that refused FIFREEZE as unsupported (not an error).
    freeze_ms: time of all FIFREEZE calls. lock_held / lock_wait_ms: the Azure Site Recovery freeze lock.
    freeze_started_at / frozen_at: time.monotonic() stamps (system-wide clock) of the first FIFREEZE
    call and of the last one returning.
    """

    FIELDS = (
        ("code", None, None),
        ("frozen", (), list),
        ("failures", (), _pairs),
        ("skipped", (), _pairs),
        ("freeze_ms", 0.0, None),
        ("lock_held", False, None),
        ("lock_wait_ms", 0.0, None),
        ("freeze_started_at", None, None),
        ("frozen_at", None, None),
        ("message", "", None),
    )

    @classmethod
    def from_message(cls, msg):
        fields = cls._fields_of(msg)
        fields["lock_held"] = bool(fields["lock_held"])
        return cls(ok=bool(msg.get("ok")), **fields)


class ThawOutcome(_Outcome):
    """Result of GuardianClient.thaw().

    ok: everything we froze was thawed on request. code: None, or 2 (inconsistent: the guardian had
    already thawed on its own deadline or a signal, or the guardian was lost). reason: 'requested',
    'deadline', 'signal', 'peer-eof', 'parent-died', 'guardian-lost', 'not-frozen', 'no-reply'.
    thawed: mount points thawed (thaw order). thaw_failures: [(mountpoint, reason)].
    thaw_ms: time of the FITHAW calls. frozen_window_ms: from the first FIFREEZE call to the last FITHAW
    return. thawed_at: time.monotonic() when the last FITHAW returned.
    """

    FIELDS = (
        ("code", None, None),
        ("reason", "requested", None),
        ("thawed", (), list),
        ("thaw_failures", (), _pairs),
        ("thaw_ms", 0.0, None),
        ("frozen_window_ms", 0.0, None),
        ("thawed_at", None, None),
        ("message", "", None),
    )

    @classmethod
    def from_message(cls, msg):
        fields = cls._fields_of(msg)
        inconsistent = fields["reason"] not in ("requested", "not-frozen")
        fields["code"] = CODE_INCONSISTENT if inconsistent else None
        return cls(ok=not inconsistent and not fields["thaw_failures"], **fields)
