"""Mount discovery from /proc/self/mountinfo and the freeze plan.

Why mountinfo and nothing else: `mount`, `lsblk` and `df` are subprocesses that hang on a dead NFS or
SMB mount (a known field complaint of the Microsoft extension). Reading mountinfo never touches the
mounted filesystems, so discovery cannot hang. No subprocess is started here.

The plan freezes only filesystems whose freeze we understand and trust (ext2/3/4, xfs, btrfs), one
mount per superblock, and never the Azure resource disk. Everything left out is reported with the
reason, so `diagnose --json` can show an operator exactly what will and will not be frozen.
"""

import os

# Filesystems we freeze: their FIFREEZE is mature and tested (real loop mounts in tests/engine).
FREEZABLE_FSTYPES = ("ext2", "ext3", "ext4", "xfs", "btrfs")

# Local block filesystems that exist but that we deliberately do not freeze (documented in docs/engine.md):
# jfs/reiserfs/f2fs/nilfs2 support FIFREEZE but are rare on Azure images and untested here; vfat/exfat/
# ntfs (e.g. the EFI system partition) and read-only images (squashfs, erofs, iso9660) have nothing a
# freeze would make consistent; zfs freezes through its own snapshot mechanism.
KNOWN_NOT_FROZEN_FSTYPES = (
    "jfs",
    "reiserfs",
    "f2fs",
    "nilfs2",
    "vfat",
    "msdos",
    "exfat",
    "ntfs",
    "ntfs3",
    "zfs",
    "squashfs",
    "erofs",
    "iso9660",
    "udf",
    "hfsplus",
)

PSEUDO_FSTYPES = (
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "configfs",
    "pstore",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "fusectl",
    "nsfs",
    "rpc_pipefs",
    "efivarfs",
    "selinuxfs",
    "sockfs",
    "pipefs",
    "anon_inodefs",
    "rootfs",
    "nfsd",
    "ramfs",
    "devfs",
)
MEMORY_FSTYPES = ("tmpfs", "ramfs", "shm")
OVERLAY_FSTYPES = ("overlay", "overlayfs", "aufs", "unionfs")
NETWORK_FSTYPES = (
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "9p",
    "afs",
    "ncpfs",
    "lustre",
    "gpfs",
    "beegfs",
    "ocfs2",
    "gfs2",
    "davfs",
    "virtiofs",
    "cephfs",
    "coda",
)

DEFAULT_RESOURCE_DISK_PATHS = ("/mnt", "/mnt/resource")

_ESCAPES = (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\"))


def decode_mountinfo_path(text):
    """Undo the octal escapes the kernel applies to paths in mountinfo (space, tab, newline, backslash)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        chunk = text[i : i + 4]
        for escaped, plain in _ESCAPES:
            if chunk == escaped:
                out.append(plain)
                i += 4
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def normalize_mountpoint(path):
    """Canonical spelling used to compare configured paths with mount points ('/data/' == '/data')."""
    path = path.strip()
    if not path:
        return path
    norm = os.path.normpath(path)
    if norm.startswith("//"):  # normpath keeps a leading '//' (POSIX); mount points never have it
        norm = "/" + norm.lstrip("/")
    return norm


class MountInfoError(ValueError):
    """A mountinfo line that cannot be parsed."""


class Mount(object):
    """One line of mountinfo, fields decoded."""

    __slots__ = (
        "mount_id",
        "parent_id",
        "devno",
        "root",
        "mountpoint",
        "mount_options",
        "optional_fields",
        "fstype",
        "source",
        "super_options",
        "st_dev",
    )

    def __init__(
        self,
        mount_id,
        parent_id,
        devno,
        root,
        mountpoint,
        mount_options,
        fstype,
        source,
        super_options,
        optional_fields=(),
    ):
        self.mount_id = mount_id
        self.parent_id = parent_id
        self.devno = devno
        self.root = root
        self.mountpoint = mountpoint
        self.mount_options = list(mount_options)
        self.optional_fields = list(optional_fields)
        self.fstype = fstype
        self.source = source
        self.super_options = list(super_options)
        self.st_dev = None  # set by pin(): what fstat of the opened mount point said at planning time

    @property
    def read_only(self):
        return "ro" in self.mount_options or "ro" in self.super_options

    def to_dict(self):
        d = {
            "mountpoint": self.mountpoint,
            "fstype": self.fstype,
            "devno": self.devno,
            "source": self.source,
            "root": self.root,
            "mount_id": self.mount_id,
        }
        if self.st_dev is not None:
            d["st_dev"] = self.st_dev  # pinned (pin()); UNPINNED_DEV: gone or replaced when planned
        return d

    def __repr__(self):
        return "Mount(%r, %s, %s)" % (self.mountpoint, self.fstype, self.devno)


def parse_mountinfo_line(line):
    left, sep, right = line.partition(" - ")
    if not sep:
        raise MountInfoError("no ' - ' separator in mountinfo line: %r" % line)
    fields, rfields = left.split(" "), right.split(" ")
    if len(fields) < 6 or len(rfields) < 2:
        raise MountInfoError("too few fields in mountinfo line: %r" % line)
    try:
        mount_id, parent_id = int(fields[0]), int(fields[1])
    except ValueError:
        raise MountInfoError("mount ids are not numbers in mountinfo line: %r" % line) from None
    super_options = rfields[2].split(",") if len(rfields) > 2 else []
    return Mount(
        mount_id,
        parent_id,
        fields[2],
        decode_mountinfo_path(fields[3]),
        decode_mountinfo_path(fields[4]),
        fields[5].split(","),
        rfields[0],
        decode_mountinfo_path(rfields[1]),
        super_options,
        optional_fields=fields[6:],
    )


def parse_mountinfo(text):
    """Parse the whole text of a mountinfo file, in the kernel's order (mount order)."""
    return [parse_mountinfo_line(line) for line in text.splitlines() if line.strip()]


def read_mountinfo(path="/proc/self/mountinfo"):
    with open(path) as f:
        return parse_mountinfo(f.read())


def _fstype_skip_reason(fstype):
    if fstype in FREEZABLE_FSTYPES:
        return None
    if fstype in PSEUDO_FSTYPES:
        return "pseudo filesystem (%s)" % fstype
    if fstype in MEMORY_FSTYPES:
        return "memory filesystem (%s)" % fstype
    if fstype in OVERLAY_FSTYPES:
        return "overlay filesystem (%s): the filesystems under it are frozen on their own" % fstype
    base = fstype.split(".")[0]
    if base in NETWORK_FSTYPES:
        return "network filesystem (%s)" % fstype
    if base in ("fuse", "fuseblk"):
        return "FUSE filesystem (%s)" % fstype
    if fstype in KNOWN_NOT_FROZEN_FSTYPES:
        return "filesystem type %s is not frozen by this extension" % fstype
    return "filesystem type %s is not in the freeze list %s" % (fstype, ",".join(FREEZABLE_FSTYPES))


class FreezePlan(object):
    """What will be frozen (in freeze order) and what will not, with reasons.

    `selected`: Mount objects in freeze order (others first, `/` last); thaw in reverse.
    `skipped`: (Mount, reason) in mountinfo order.
    `missing_includes`: MountsToInclude entries that name no mount (worth a warning).
    """

    def __init__(self, selected, skipped, missing_includes=()):
        self.selected = list(selected)
        self.skipped = list(skipped)
        self.missing_includes = list(missing_includes)

    @property
    def mountpoints(self):
        return [m.mountpoint for m in self.selected]

    def to_dict(self):
        skipped = []
        for mount, reason in self.skipped:
            entry = mount.to_dict()
            entry["reason"] = reason
            skipped.append(entry)
        return {
            "freeze_order": self.mountpoints,
            "selected": [m.to_dict() for m in self.selected],
            "skipped": skipped,
            "missing_includes": list(self.missing_includes),
        }


def _shadowed(mounts):
    """Indexes of mounts hidden by a later mount on the same path or on an ancestor path.

    A later mount L hides M when L's mount point is M's mount point or one of its ancestors and L is
    not itself one of M's ancestors in the mount tree (M may be mounted on top of L).
    """
    by_id = dict((m.mount_id, m) for m in mounts)

    def ancestors(m):
        seen = set()
        while m.parent_id in by_id and m.parent_id not in seen and m.parent_id != m.mount_id:
            seen.add(m.parent_id)
            m = by_id[m.parent_id]
        return seen

    at_path = {}
    for i, m in enumerate(mounts):
        at_path.setdefault(m.mountpoint, []).append(i)

    def path_and_ancestors(path):
        yield path
        while path not in ("/", ""):
            path = os.path.dirname(path)
            yield path

    hidden = {}
    for i, m in enumerate(mounts):  # linear in the mount count times the path depth (Docker hosts)
        anc = None
        best = None
        for p in path_and_ancestors(m.mountpoint):
            for j in at_path.get(p, ()):
                if j <= i or (best is not None and j >= best):
                    continue
                if anc is None:
                    anc = ancestors(m)
                if mounts[j].mount_id in anc:
                    continue
                best = j
                break
        if best is not None:
            hidden[i] = mounts[best]
    return hidden


def _normalized(paths):
    return set(normalize_mountpoint(p) for p in paths if p.strip())


def plan_freeze(mounts, include=None, skip=(), resource_disk_paths=DEFAULT_RESOURCE_DISK_PATHS):
    """Decide which mounts to freeze.

    include: None = every eligible mount; a list = only these mount points ([] freezes nothing).
    skip: mount points never frozen. A skipped or resource-disk mount excludes its whole superblock, so
    a bind mount elsewhere cannot freeze it behind the operator's back (skipping `/` really means `/`).
    """
    include_set = None if include is None else _normalized(include)
    skip_set, resource_set = _normalized(skip), _normalized(resource_disk_paths)
    hidden = _shadowed(mounts)
    excluded = _excluded_superblocks(mounts, hidden, skip_set, resource_set)
    candidates, skipped = [], []
    for i, m in enumerate(mounts):
        reason = _skip_reason(m, hidden.get(i), skip_set, resource_set, include_set, excluded)
        if reason is None:
            candidates.append(m)
        else:
            skipped.append((m, reason))
    selected, duplicates = _one_per_superblock(candidates)
    order = dict((id(m), i) for i, m in enumerate(mounts))
    skipped = sorted(skipped + duplicates, key=lambda pair: order[id(pair[0])])
    missing = []
    if include_set is not None:
        visible = set(m.mountpoint for i, m in enumerate(mounts) if i not in hidden)
        missing = sorted(p for p in include_set if p not in visible)
    return FreezePlan(_freeze_order(selected), skipped, missing)


def _excluded_superblocks(mounts, hidden, skip_set, resource_set):
    """{devno: reason} of superblocks excluded as a whole: skip list and resource disk, when visible there."""
    excluded = {}
    for i, m in enumerate(mounts):
        if i in hidden:
            continue
        if m.mountpoint in skip_set:
            excluded.setdefault(m.devno, "listed in MountsToSkip (%s)" % m.mountpoint)
        elif m.mountpoint in resource_set and m.fstype in FREEZABLE_FSTYPES:
            excluded.setdefault(m.devno, "Azure resource disk (%s)" % m.mountpoint)
    return excluded


def _skip_reason(m, shadowed_by, skip_set, resource_set, include_set, excluded):
    """Why mount `m` is not frozen, or None when it may be."""
    if shadowed_by is not None:
        return "shadowed by a later mount on %s" % shadowed_by.mountpoint
    if m.mountpoint in skip_set:
        return "listed in MountsToSkip"
    if m.mountpoint in resource_set:
        return "Azure resource disk"
    reason = _fstype_skip_reason(m.fstype)
    if reason is None and include_set is not None and m.mountpoint not in include_set:
        reason = "not listed in MountsToInclude"
    if reason is None and m.devno in excluded:
        reason = "same filesystem (%s) as one excluded: %s" % (m.devno, excluded[m.devno])
    if reason is None and m.read_only:
        reason = "read-only mount"
    return reason


def _one_per_superblock(candidates):
    """(selected, skipped pairs): one mount per superblock, the filesystem's own root first, else the earliest."""
    chosen = {}
    for m in candidates:
        best = chosen.get(m.devno)
        if best is None or (m.root == "/" and best.root != "/"):
            chosen[m.devno] = m
    selected, skipped = [], []
    for m in candidates:
        if chosen[m.devno] is m:
            selected.append(m)
        else:
            skipped.append((m, "same filesystem (superblock %s) as %s" % (m.devno, chosen[m.devno].mountpoint)))
    return selected, skipped


def _freeze_order(selected):
    """Most recently mounted first, `/` always last (a stable sort). Thaw is the reverse."""
    ordered = list(reversed(selected))
    ordered.sort(key=lambda m: m.mountpoint == "/")
    return ordered


def plan_from_mountinfo(
    path="/proc/self/mountinfo", include=None, skip=(), resource_disk_paths=DEFAULT_RESOURCE_DISK_PATHS
):
    """Read mountinfo and plan in one call (the freeze tests and benchmarks check their plans with it)."""
    return plan_freeze(read_mountinfo(path), include=include, skip=skip, resource_disk_paths=resource_disk_paths)


def _loop_backing_file(source, sysfs_block="/sys/block"):
    if not source.startswith("/dev/loop"):
        return None
    try:
        with open(os.path.join(sysfs_block, os.path.basename(source), "loop", "backing_file")) as f:
            return f.read().strip() or None
    except (IOError, OSError):
        return None


def freeze_waves(selected, backing_file=_loop_backing_file):
    """Group the plan's mounts into waves frozen one after the other, each wave's mounts in parallel.

    A file system stacked on another one (a loop device whose image lives on a selected file system)
    must be frozen before the one under it, so its flush can still reach its image: it goes in an
    earlier wave. Everything else freezes together, and `/` always alone, last. Freezing in parallel
    matters because each FIFREEZE waits for RCU grace periods: tens of milliseconds per file system.
    """
    by_point = dict((m.mountpoint, m) for m in selected)
    lower = {}
    for m in selected:
        path = backing_file(m.source)
        if not path:
            continue
        holders = [p for p in by_point if p != m.mountpoint and (path == p or path.startswith(p.rstrip("/") + "/"))]
        if holders:
            lower[m.mountpoint] = max(holders, key=len)
    height = {}

    def height_of(point, seen=()):
        # how many file systems are stacked on top of `point` (0: nothing on top, freeze first)
        if point in height:
            return height[point]
        uppers = [u for u, low in lower.items() if low == point and u not in seen]
        height[point] = 1 + max(height_of(u, seen + (point,)) for u in uppers) if uppers else 0
        return height[point]

    others = [m.mountpoint for m in selected if m.mountpoint != "/"]
    waves = []
    for level in sorted(set(height_of(p) for p in others)):
        waves.append([p for p in others if height[p] == level])
    if "/" in by_point:
        waves.append(["/"])
    return waves


# -- identity of a planned mount ----------------------------------------------------------------
#
# A mount point is a path; what is frozen is whatever file system that path leads to when it is opened.
# If the planned mount disappears in between (`umount -l /data`), the same path opens the file system
# underneath (`/`), which nobody planned to freeze. So the plan pins each selected mount: its mount id
# (mountinfo) and the st_dev of its opened root, checked on one descriptor right after reading mountinfo;
# every later opener (the guardian, the worker's fallback thaw, the supervisor's thaw) compares its own
# descriptor with them and refuses anything else.

UNPINNED_DEV = -1  # never equal to a real st_dev: the mount was already gone when planned


def fd_mount_id(fd):
    """The mount id of an open descriptor (/proc/self/fdinfo `mnt_id`, Linux 3.15+), None if unknown."""
    try:
        with open("/proc/self/fdinfo/%d" % fd) as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    except (IOError, OSError, ValueError, IndexError):
        pass
    return None


def _devno_of(mount):
    try:
        major, minor = mount.devno.split(":")
        return os.makedev(int(major), int(minor))
    except ValueError:
        return None


def pin(plan):
    """Record st_dev (and check the mount id) of every selected mount. Call right after reading mountinfo.

    A mount point whose opened root is not the mountinfo entry (another mount id; without mnt_id support,
    a non-btrfs st_dev that differs from the mountinfo device) gets UNPINNED_DEV: nothing will freeze it.
    """
    for m in plan.selected:
        m.st_dev = UNPINNED_DEV
        try:
            fd = os.open(m.mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue  # the guardian cannot open it either: code 123
        try:
            st_dev, mnt_id = os.fstat(fd).st_dev, fd_mount_id(fd)
        finally:
            os.close(fd)
        if mnt_id is not None and mnt_id != m.mount_id:
            continue
        if mnt_id is None and m.fstype != "btrfs" and st_dev != _devno_of(m):
            continue  # btrfs subvolumes have their own st_dev: only the mount id can tell
        m.st_dev = st_dev
    return plan


def identities(selected):
    """{mountpoint: {"dev": st_dev, "mnt_id": mount id}} for the guardian's --expect."""
    return dict((m.mountpoint, {"dev": m.st_dev, "mnt_id": m.mount_id}) for m in selected)


def identity_problem(fd, mountpoint, expected):
    """None when the directory open on fd is the planned mount (same st_dev and, where the kernel tells,
    the same mount id); otherwise why not."""
    if not expected:
        return None
    st_dev, mnt_id = os.fstat(fd).st_dev, fd_mount_id(fd)
    if expected.get("dev") == UNPINNED_DEV:
        return "%s was not the planned mount when the plan was made; not frozen" % mountpoint
    if expected.get("dev") is not None and st_dev != expected["dev"]:
        return (
            "%s is no longer the planned file system (device %d:%d, planned %d:%d): it was unmounted or "
            "replaced; not frozen"
            % (mountpoint, os.major(st_dev), os.minor(st_dev), os.major(expected["dev"]), os.minor(expected["dev"]))
        )
    if mnt_id is not None and expected.get("mnt_id") is not None and mnt_id != expected["mnt_id"]:
        return "%s is no longer the planned mount (mount id %d, planned %d); not frozen" % (
            mountpoint,
            mnt_id,
            expected["mnt_id"],
        )
    return None
