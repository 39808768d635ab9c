"""Mount discovery and freeze plan, on fabricated mountinfo files (no root, nothing frozen)."""

import time

import pytest
from vmsnapshot.mounts import (
    MountInfoError,
    decode_mountinfo_path,
    parse_mountinfo,
    plan_freeze,
    plan_from_mountinfo,
    read_mountinfo,
)

# A realistic Azure VM: root ext4, /boot, data disks, resource disk, Docker, NFS, FUSE, bind mounts,
# btrfs subvolumes, a read-only mount, a shadowed mount and escaped paths.
MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334460k,nr_inodes=3083615,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684084k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,discard
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
31 27 8:16 / /boot rw,relatime shared:4 - ext4 /dev/sda16 rw
32 31 8:15 / /boot/efi rw,relatime shared:3 - vfat /dev/sda15 rw,fmask=0077
40 27 8:17 / /mnt rw,relatime shared:5 - ext4 /dev/sdb1 rw
41 27 8:33 / /data rw,relatime shared:6 - xfs /dev/sdc1 rw,attr2,inode64
42 27 0:39 / /srv/btrfs rw,relatime shared:7 - btrfs /dev/sdd rw,space_cache=v2,subvolid=5,subvol=/
43 27 0:39 /sv1 /srv/sv1 rw,relatime shared:8 - btrfs /dev/sdd rw,space_cache=v2,subvolid=256,subvol=/sv1
44 27 8:33 /exports /srv/exports rw,relatime shared:9 - xfs /dev/sdc1 rw,attr2,inode64
45 27 8:49 / /ro\040data rw,relatime shared:10 - ext4 /dev/sde1 ro
46 27 8:50 / /archive ro,relatime shared:11 - ext4 /dev/sde2 rw
47 27 8:65 / /data\040with\011tab\134and\012newline rw,relatime - ext4 /dev/sdf1 rw
50 27 0:50 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u
51 27 0:51 / /nfs rw,relatime - nfs4 server:/export rw,vers=4.2
52 27 0:52 / /smb rw,relatime - cifs //server/share rw
53 27 0:53 / /home/u/sshfs rw,nosuid,nodev,relatime - fuse.sshfs u@host:/ rw,user_id=0
54 27 8:97 / /old rw,relatime - ext4 /dev/sdg1 rw
55 27 8:98 / /old rw,relatime - xfs /dev/sdh1 rw
56 27 8:113 / /jfsdata rw,relatime - jfs /dev/sdi1 rw
57 27 0:57 / /run/user/0 rw,nosuid,nodev,relatime - tmpfs tmpfs rw,size=100k
58 40 8:114 / /mnt/resource rw,relatime - ext4 /dev/sdj1 rw
"""


@pytest.fixture
def mounts():
    return parse_mountinfo(MOUNTINFO)


def by_path(plan):
    return {m.mountpoint: reason for m, reason in plan.skipped}


def test_parse_fields_and_optional_fields(mounts):
    root = [m for m in mounts if m.mountpoint == "/"][0]
    assert (root.mount_id, root.parent_id, root.devno, root.root) == (27, 1, "8:1", "/")
    assert root.fstype == "ext4" and root.source == "/dev/sda1"
    assert root.mount_options == ["rw", "relatime"] and root.optional_fields == ["shared:1"]
    assert root.super_options == ["rw", "discard"]
    sv1 = [m for m in mounts if m.mountpoint == "/srv/sv1"][0]
    assert sv1.root == "/sv1" and sv1.devno == "0:39"


def test_escaped_paths_are_decoded(mounts):
    paths = [m.mountpoint for m in mounts]
    assert "/ro data" in paths
    assert "/data with\ttab\\and\nnewline" in paths
    assert decode_mountinfo_path(r"a\040b\134\040c") == "a b\\ c"
    assert decode_mountinfo_path(r"no\escape") == r"no\escape"


def test_malformed_lines_are_reported():
    with pytest.raises(MountInfoError, match="separator"):
        parse_mountinfo("27 1 8:1 / / rw ext4 /dev/sda1 rw\n")
    with pytest.raises(MountInfoError, match="numbers"):
        parse_mountinfo("x 1 8:1 / / rw - ext4 /dev/sda1 rw\n")


def test_default_plan_selection_and_reasons(mounts):
    plan = plan_freeze(mounts)
    assert plan.mountpoints == ["/old", "/data with\ttab\\and\nnewline", "/srv/btrfs", "/data", "/boot", "/"]
    reasons = by_path(plan)
    assert reasons["/proc"].startswith("pseudo filesystem")
    assert reasons["/run/user/0"].startswith("memory filesystem (tmpfs)")
    assert reasons["/var/lib/docker/overlay2/abc/merged"].startswith("overlay")
    assert reasons["/nfs"] == "network filesystem (nfs4)"
    assert reasons["/smb"] == "network filesystem (cifs)"
    assert reasons["/home/u/sshfs"] == "FUSE filesystem (fuse.sshfs)"
    assert reasons["/boot/efi"] == "filesystem type vfat is not frozen by this extension"
    assert reasons["/jfsdata"] == "filesystem type jfs is not frozen by this extension"
    assert reasons["/mnt"] == "Azure resource disk"
    assert reasons["/mnt/resource"] == "Azure resource disk"
    assert reasons["/ro data"] == "read-only mount"  # superblock read-only
    assert reasons["/archive"] == "read-only mount"  # mount read-only
    assert reasons["/srv/sv1"] == "same filesystem (superblock 0:39) as /srv/btrfs"
    assert reasons["/srv/exports"] == "same filesystem (superblock 8:33) as /data"
    assert reasons["/old"] == "shadowed by a later mount on /old"  # the ext4 under the later xfs


def test_shadowed_mount_later_one_wins(mounts):
    plan = plan_freeze(mounts, include=["/old"])
    assert [(m.mountpoint, m.fstype) for m in plan.selected] == [("/old", "xfs")]


def test_shadowed_by_a_mount_on_an_ancestor_path():
    text = (
        "27 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "30 27 8:2 / /a rw - ext4 /dev/sda2 rw\n"
        "31 30 8:3 / /a/b rw - xfs /dev/sda3 rw\n"
        "32 27 8:4 / /a rw - ext4 /dev/sda4 rw\n"
    )
    plan = plan_freeze(parse_mountinfo(text))
    reasons = by_path(plan)
    assert reasons["/a/b"] == "shadowed by a later mount on /a"
    assert plan.mountpoints == ["/a", "/"]
    assert [m.devno for m in plan.selected] == ["8:4", "8:1"]


def test_mount_stacked_on_top_of_its_parent_is_not_hidden():
    text = (
        "27 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "30 27 8:2 / /a rw - ext4 /dev/sda2 rw\n"
        "31 30 8:3 / /a rw - xfs /dev/sda3 rw\n"
    )
    plan = plan_freeze(parse_mountinfo(text))
    assert plan.mountpoints == ["/a", "/"]
    assert plan.selected[0].fstype == "xfs"
    assert by_path(plan)["/a"] == "shadowed by a later mount on /a"


def test_bind_mount_prefers_the_filesystem_root():
    text = (
        "27 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
        "40 27 8:33 /sub /bind rw - xfs /dev/sdc1 rw\n"
        "41 27 8:33 / /data rw - xfs /dev/sdc1 rw\n"
    )
    plan = plan_freeze(parse_mountinfo(text))
    assert plan.mountpoints == ["/data", "/"]
    assert by_path(plan)["/bind"] == "same filesystem (superblock 8:33) as /data"


def test_root_bind_mount_does_not_freeze_root_twice():
    text = "27 1 254:0 / / rw - ext4 /dev/vda rw\n42 27 254:0 /run/netns /run/netns rw shared:1 - ext4 /dev/vda rw\n"
    plan = plan_freeze(parse_mountinfo(text))
    assert plan.mountpoints == ["/"]


def test_include_restricts_and_empty_include_freezes_nothing(mounts):
    plan = plan_freeze(mounts, include=["/data/", "/boot", "/nowhere"])
    assert plan.mountpoints == ["/data", "/boot"]
    assert plan.missing_includes == ["/nowhere"]
    assert by_path(plan)["/"] == "not listed in MountsToInclude"
    assert plan_freeze(mounts, include=[]).selected == []


def test_include_of_an_ineligible_mount_still_not_frozen(mounts):
    plan = plan_freeze(mounts, include=["/nfs", "/mnt/resource", "/archive"])
    assert plan.selected == []
    reasons = by_path(plan)
    assert reasons["/nfs"] == "network filesystem (nfs4)"
    assert reasons["/mnt/resource"] == "Azure resource disk"
    assert reasons["/archive"] == "read-only mount"


def test_skip_excludes_the_whole_superblock(mounts):
    plan = plan_freeze(mounts, skip=["/data", "/"])
    assert "/data" not in plan.mountpoints and "/" not in plan.mountpoints
    reasons = by_path(plan)
    assert reasons["/data"] == "listed in MountsToSkip"
    # the bind of the same xfs elsewhere must not freeze it behind the operator's back
    assert reasons["/srv/exports"].startswith("same filesystem (8:33) as one excluded: listed in MountsToSkip")
    assert plan.mountpoints == ["/old", "/data with\ttab\\and\nnewline", "/srv/btrfs", "/boot"]


def test_skipping_root_also_skips_binds_of_root():
    text = (
        "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
        "42 27 254:0 /run/netns /run/netns rw shared:1 - ext4 /dev/vda rw\n"
        "50 27 7:0 / /data rw - ext4 /dev/loop0 rw\n"
    )
    plan = plan_freeze(parse_mountinfo(text), skip=["/"])
    assert plan.mountpoints == ["/data"]


def test_resource_disk_paths_are_configurable(mounts):
    plan = plan_freeze(mounts, resource_disk_paths=())
    assert "/mnt" in plan.mountpoints and "/mnt/resource" in plan.mountpoints


def test_freeze_order_root_last_and_to_dict(mounts):
    plan = plan_freeze(mounts)
    assert plan.mountpoints[-1] == "/"
    d = plan.to_dict()
    assert d["freeze_order"] == plan.mountpoints
    assert d["selected"][-1]["devno"] == "8:1"
    assert {
        "mountpoint": "/nfs",
        "fstype": "nfs4",
        "devno": "0:51",
        "source": "server:/export",
        "root": "/",
        "mount_id": 51,
        "reason": "network filesystem (nfs4)",
    } in d["skipped"]
    # every mount is accounted for exactly once
    assert len(d["selected"]) + len(d["skipped"]) == len(mounts)


def test_read_mountinfo_from_file(tmp_path):
    f = tmp_path / "mountinfo"
    f.write_text(MOUNTINFO)
    assert len(read_mountinfo(str(f))) == len(MOUNTINFO.strip().splitlines())
    plan = plan_from_mountinfo(str(f), include=["/data"])
    assert plan.mountpoints == ["/data"]


def test_live_mountinfo_parses():
    mounts = read_mountinfo()
    assert any(m.mountpoint == "/" for m in mounts)
    # with an include list naming nothing real, the live table yields an empty plan
    assert plan_freeze(mounts, include=["/definitely/not/mounted"]).selected == []


def test_large_docker_host_plans_fast():
    lines = ["27 1 8:1 / / rw - ext4 /dev/sda1 rw", "28 27 8:17 / /var/lib/docker rw - xfs /dev/sdb1 rw"]
    for n in range(5000):
        lines.append(
            "%d 28 0:%d / /var/lib/docker/overlay2/%064x/merged rw - overlay overlay rw" % (100 + n, 1000 + n, n)
        )
        lines.append("%d 27 0:4 net:[%d] /run/docker/netns/%x rw - nsfs nsfs rw" % (10000 + n, 4026530000 + n, n))
    mounts = parse_mountinfo("\n".join(lines) + "\n")
    t0 = time.monotonic()
    plan = plan_freeze(mounts)
    took = time.monotonic() - t0
    assert plan.mountpoints == ["/var/lib/docker", "/"]
    assert len(plan.skipped) == 10000
    assert took < 2.0, "planning 10002 mounts took %.2f s" % took


def test_freeze_waves_parallel_root_last_and_stacked_first():
    from vmsnapshot.mounts import freeze_waves

    class M(object):
        def __init__(self, point, source):
            self.mountpoint, self.source = point, source

    selected = [M("/data", "/dev/sdc1"), M("/img", "/dev/loop3"), M("/srv", "/dev/sdd1"), M("/", "/dev/sda1")]
    backing = {"/dev/loop3": "/srv/images/img.raw"}
    waves = freeze_waves(selected, backing_file=backing.get)
    # /img lives on /srv: frozen before it; independent file systems together; / alone and last.
    assert waves == [["/data", "/img"], ["/srv"], ["/"]]
    assert freeze_waves(selected[:1] + selected[2:], backing_file=backing.get) == [["/data", "/srv"], ["/"]]
    assert freeze_waves([M("/", "/dev/sda1")], backing_file=backing.get) == [["/"]]


def test_guardian_reads_waves_from_its_command_line():
    from vmsnapshot.guardian import split_waves

    assert split_waves(["::", "/a", "/b", "::", "/"]) == [["/a", "/b"], ["/"]]
    assert split_waves(["::", "/a", "/b", "/c"]) == [["/a", "/b", "/c"]]
    assert split_waves(["/a", "/b"]) == [["/a"], ["/b"]]  # no marker: one at a time, in order


def test_the_configuration_install_writes_freezes_every_eligible_file_system(tmp_path):
    """A blank MountsToInclude in the default file is unset, not an empty list: after `install` a VM gets
    file-system-consistent snapshots, not silently crash-consistent ones (planned on fabricated mountinfo)."""
    from vmsnapshot import config

    path = tmp_path / "vmbackup.conf"
    path.write_text(config.DEFAULT_FILE)
    cfg = config.load(str(path))
    assert cfg.mounts_to_include is None
    plan = plan_freeze(parse_mountinfo(MOUNTINFO), include=cfg.mounts_to_include, skip=cfg.mounts_to_skip)
    assert "/" in plan.mountpoints and "/data" in plan.mountpoints
