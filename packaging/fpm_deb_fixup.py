"""Finish the DEB fpm 1.17 builds so lintian accepts it, byte for byte reproducibly.

fpm writes the Debian changelog as ``changelog.Debian.gz`` and then, when no upstream changelog is given,
renames it ``changelog.gz`` (fpm/lib/fpm/package/deb.rb). That name is right only for a native package;
ours has a Debian revision (``<version>-1``), so Debian policy 12.7 and lintian
(``debian-changelog-file-missing-or-wrong-name``) want ``changelog.Debian.gz``. No fpm option keeps the
name without shipping a second, upstream changelog, so this step rewrites the package:

- data.tar: the member ``changelog.gz`` becomes ``changelog.Debian.gz``, gzipped again without a
  timestamp (Ruby's GzipWriter stamps SOURCE_DATE_EPOCH: ``package-contains-timestamped-gzip``);
- control.tar: ``md5sums`` follows the rename; the ``License`` field, which fpm always writes and dpkg
  does not know (``unknown-field``), is dropped (the license is in ``copyright``).

Everything else (every other member's bytes and metadata, the ar header fields, member order) is kept.
The rewrite is a pure function of fpm's output: tar members keep their metadata, gzip streams carry no
name and mtime 0, so two builds stay byte-identical.
"""

import gzip
import hashlib
import io
import tarfile

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
DROPPED_CONTROL_FIELDS = ("License",)


class DebFixupError(Exception):
    """The file is not the DEB fpm writes (ar with gzipped control and data tars)."""


def read_ar(data):
    """[(header fields, payload)] of an ar archive; fields are the raw 60-byte header."""
    if not data.startswith(AR_MAGIC):
        raise DebFixupError("not an ar archive")
    members, pos = [], len(AR_MAGIC)
    while pos < len(data):
        header = data[pos : pos + AR_HEADER]
        if len(header) != AR_HEADER or header[58:60] != b"`\n":
            raise DebFixupError("bad ar header at offset %d" % pos)
        size = int(header[48:58].decode().strip())
        start = pos + AR_HEADER
        members.append((header, data[start : start + size]))
        pos = start + size + (size % 2)
    return members


def write_ar(members):
    out = [AR_MAGIC]
    for header, payload in members:
        out.append(header[:48] + ("%-10d" % len(payload)).encode() + header[58:60])
        out.append(payload)
        if len(payload) % 2:
            out.append(b"\n")
    return b"".join(out)


def ar_name(header):
    return header[:16].decode().strip().rstrip("/")


def member_path(info):
    """A tar member's path without the leading "./" dpkg-deb and fpm write."""
    return info.name[2:] if info.name.startswith("./") else info.name


def deterministic_gzip(data):
    """gzip without file name and with mtime 0, at the level fpm and nfpm use."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def rewrite_tar(tar_gz, change):
    """Apply change(TarInfo, bytes or None) -> (TarInfo, bytes or None) to every member of a tar.gz."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(gzip.decompress(tar_gz)), mode="r:") as src,
        tarfile.open(fileobj=out, mode="w:", format=tarfile.GNU_FORMAT) as dst,
    ):
        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isreg() else None
            info, data = change(info, data)
            if data is not None:
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    return deterministic_gzip(out.getvalue())


def fix(path, package):
    """Rewrite the DEB at path in place (see the module docstring); returns the changelog's new path."""
    doc = "usr/share/doc/%s/" % package
    old, new = doc + "changelog.gz", doc + "changelog.Debian.gz"
    with open(path, "rb") as f:
        members = read_ar(f.read())
    names = [ar_name(h) for h, _ in members]
    if names[:1] != ["debian-binary"] or "control.tar.gz" not in names or "data.tar.gz" not in names:
        raise DebFixupError("%s: expected debian-binary, control.tar.gz, data.tar.gz, found %s" % (path, names))
    renamed = {}

    def data_change(info, data):
        if member_path(info) == old:
            info.name = "./" + new
            data = deterministic_gzip(gzip.decompress(data))
            renamed["md5"] = hashlib.md5(data).hexdigest()
        return info, data

    def control_change(info, data):
        name = member_path(info)
        if name == "md5sums":
            data = "".join(
                "%s  %s\n" % (renamed["md5"], new) if line.endswith("  " + old + "\n") else line
                for line in data.decode().splitlines(True)
            ).encode()
        elif name == "control":
            data = "".join(
                line for line in data.decode().splitlines(True) if line.split(":", 1)[0] not in DROPPED_CONTROL_FIELDS
            ).encode()
        return info, data

    fixed = {"data.tar.gz": rewrite_tar(members[names.index("data.tar.gz")][1], data_change)}
    if "md5" not in renamed:
        raise DebFixupError("%s: fpm wrote no %s" % (path, old))
    fixed["control.tar.gz"] = rewrite_tar(members[names.index("control.tar.gz")][1], control_change)
    members = [(h, fixed.get(ar_name(h), payload)) for h, payload in members]
    with open(path, "wb") as f:
        f.write(write_ar(members))
    return "/" + new
