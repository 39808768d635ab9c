"""Which path takes the snapshots: the guest (SAS PUT comp=snapshot) or the host's backup service.

A pure function of the configuration, customSettings and includedDisks, in Microsoft's order:
vmbackup.conf SnapshotMethod, else customSettings.takeSnapshotFrom, else
firstHostThenGuest; forced to onlyHost by disks only the host can snapshot (VM guest state, DirectDrive,
write accelerator); an excluded-disk job without a LUN list must run on the guest (code 17 when the host
is forced). Wrong types end in a coded SettingsError naming the field, never a traceback.
"""

from . import codes

ONLY_GUEST, ONLY_HOST = "onlyGuest", "onlyHost"
FIRST_HOST, FIRST_GUEST = "firstHostThenGuest", "firstGuestThenHost"
METHODS = (ONLY_GUEST, ONLY_HOST, FIRST_HOST, FIRST_GUEST)
DEFAULT = FIRST_HOST
USES_HOST = (ONLY_HOST, FIRST_HOST, FIRST_GUEST)

# includedDisks flags that only the host can honour, with the disk kind they stand for.
HOST_ONLY_FLAGS = (
    ("isVmgsBlobIncluded", "the VM guest-state blob (Trusted Launch / confidential VM)"),
    ("isAnyDirectDriveDiskIncluded", "a DirectDrive disk (Premium SSD v2 / Ultra)"),
    ("isAnyWADiskIncluded", "a write-accelerated disk"),
)


class MethodError(Exception):
    """A setting that decides the method is malformed or contradictory: (code, message)."""

    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


class Choice(object):
    """The method and, in words, why (logged, reported in telemetry and by diagnose)."""

    def __init__(self, method, reason, requested=None, source=None, forced_by=()):
        self.method = method
        self.reason = reason
        self.requested = requested
        self.source = source
        self.forced_by = list(forced_by)

    @property
    def uses_host(self):
        return self.method in USES_HOST

    def to_dict(self):
        return {"method": self.method, "reason": self.reason, "requested": self.requested, "source": self.source}


def _canonical(value):
    """The method a string names (case-insensitive), or None for an unknown string."""
    for m in METHODS:
        if value.strip().lower() == m.lower():
            return m
    return None


def _flag(disks, name):
    value = disks.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MethodError(codes.BAD_PARAMETER, "objectStr.includedDisks.%s must be true or false" % name)
    return value


def _lun_list(field, value, code):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        raise MethodError(code, "%s must be a list of integers (LUNs)" % field)
    return value


def choose(config_method, custom_settings, included_disks, have_sas=True):
    """The Choice for one job, or MethodError(code, message).

    config_method: vmbackup.conf [SnapshotThread] SnapshotMethod (None or "" = not set).
    have_sas: whether the job carries blobSASUri; they may be missing only when the host alone snapshots.
    """
    custom = custom_settings or {}
    disks = included_disks or {}
    if not isinstance(custom, dict):
        raise MethodError(codes.BAD_PARAMETER, "customSettings must be a JSON object")
    if not isinstance(disks, dict):
        raise MethodError(codes.BAD_PARAMETER, "objectStr.includedDisks must be an object")
    requested, source = None, "default"
    if config_method not in (None, ""):
        requested, source = config_method, "vmbackup.conf [SnapshotThread] SnapshotMethod"
    elif custom.get("takeSnapshotFrom") not in (None, ""):
        requested, source = custom.get("takeSnapshotFrom"), "customSettings.takeSnapshotFrom"
        if not isinstance(requested, str):
            raise MethodError(codes.BAD_PARAMETER, "customSettings.takeSnapshotFrom must be a string")
    if requested is None:
        method, reason = DEFAULT, "default method %s" % DEFAULT
    else:
        method = _canonical(requested)
        if method is None:
            method, reason = DEFAULT, "unknown method %r in %s: %s" % (requested[:40], source, DEFAULT)
        else:
            reason = "%s from %s" % (method, source)

    forced_by = [kind for flag, kind in HOST_ONLY_FLAGS if _flag(disks, flag)]
    luns = _lun_list("objectStr.includedDisks.dataDiskLunList", disks.get("dataDiskLunList"), codes.INVALID_LUN_LIST)
    wa_luns = _lun_list("customSettings.waDiskLunList", custom.get("waDiskLunList"), codes.BAD_PARAMETER)
    wa_included = sorted(set(luns) & set(wa_luns))
    if wa_included:
        forced_by.append(
            "write-accelerated LUN %s (customSettings.waDiskLunList)" % ", ".join(str(x) for x in wa_included)
        )
    for name in ("isAnyDiskExcluded", "isOSDiskIncluded", "isVmmdBlobIncluded", "isVMADEEnabled"):
        _flag(disks, name)  # type checks: a wrong type is a coded error, whatever the method

    if _flag(disks, "isAnyDiskExcluded") and not luns:
        if forced_by:
            raise MethodError(
                codes.INVALID_LUN_LIST,
                "some disks are excluded but includedDisks.dataDiskLunList is empty, and the "
                "host must take the snapshots because of %s" % "; ".join(forced_by),
            )
        choice = Choice(
            ONLY_GUEST,
            "some disks are excluded and there is no LUN list: %s (was %s)" % (ONLY_GUEST, reason),
            requested,
            source,
        )
    elif forced_by:
        choice = Choice(
            ONLY_HOST,
            "only the host can snapshot %s (was %s)" % ("; ".join(forced_by), reason),
            requested,
            source,
            forced_by,
        )
    else:
        choice = Choice(method, reason, requested, source)
    if not have_sas and choice.method != ONLY_HOST:  # the guest may have to snapshot: it needs the SAS URIs
        raise MethodError(
            codes.BAD_PARAMETER,
            "protectedSettings.objectStr.blobSASUri must be a non-empty list of "
            "blob SAS URIs unless only the host snapshots; the method is %s" % choice.reason,
        )
    return choice


def host_disk_ids(included_disks):
    """The disk identifiers the host snapshots: the data disk LUNs, and -1 for the OS disk."""
    disks = included_disks or {}
    ids = list(disks.get("dataDiskLunList") or [])
    if disks.get("isOSDiskIncluded") is True and -1 not in ids:
        ids.append(-1)
    return ids
