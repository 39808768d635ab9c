"""Render the package description (package_description.py) as fpm command lines (``PACKAGER=fpm``).

fpm (github.com/jordansissel/fpm, a Ruby program; the kit runs 1.17.0 from the vendored source tree the
Makefile unpacks) builds the same DEB and RPM from the same description as nfpm does. It reads files
from a staged root (``-C``), so modes come from the staged tree; RPM-only attributes go through
``--rpm-attr``. The argument lists are unit-tested, the packages they build compared with nfpm's
(tests/packaging/test_packaging_fpm.py).
"""

# Reproducible RPMs: rpmbuild (4.14 and later) stamps the build time from SOURCE_DATE_EPOCH, clamps every
# file's mtime to it (fpm stages the files now) and takes a fixed build host instead of the machine's name.
RPMBUILD_DEFINES = (
    "_buildhost reproducible",
    "use_source_date_epoch_as_buildtime 1",
    "clamp_mtime_to_source_date_epoch 1",
)

# fpm compresses with its own tools; gzip matches what nfpm writes. --category is the DEB section and the
# RPM group. The DEB gets no --vendor: fpm would write a Vendor field dpkg does not know (lintian
# unknown-field); the changelog name and the License field are fixed after fpm (fpm_deb_fixup.py).
FAMILY_OPTIONS = {
    "deb": lambda d, meta: [
        "--category",
        d["section"],
        "--vendor",
        "",
        "--deb-priority",
        d["priority"],
        "--deb-user",
        "root",
        "--deb-group",
        "root",
        "--deb-changelog",
        meta["debian_changelog"],
        "--deb-compression",
        "gz",
        # only the files the description marks config are conffiles
        "--deb-no-default-config-files",
    ],
    "rpm": lambda d, meta: (
        [
            "--category",
            d["rpm_group"],
            "--vendor",
            d["vendor"],
            "--rpm-os",
            "linux",
            "--rpm-summary",
            d["summary"],
            "--rpm-user",
            "root",
            "--rpm-group",
            "root",
            "--rpm-changelog",
            meta["rpm_changelog"],
            "--rpm-compression",
            "gzip",
            "--rpm-digest",
            "sha256",
        ]
        + [arg for define in RPMBUILD_DEFINES for arg in ("--rpm-rpmbuild-define", define)]
    ),
}


def fpm_dependency(dep, family):
    """fpm's neutral "name op version": it rewrites "python3 >= 3.6" as "python3 (>= 3.6)" in a DEB.
    RPM dependencies are already in that form and may hold parentheses of their own (python(abi))."""
    if family == "deb":
        return dep.replace("(", "").replace(")", "")
    return dep


def for_family(entries, family):
    return [e for e in entries if e["packager"] in (None, family)]


def argv(desc, family, root, meta, output, fpm="fpm"):
    """The fpm command building desc's package of one family ("deb" or "rpm") into output."""
    entries = for_family(desc["contents"], family)
    args = [
        fpm,
        "-s",
        "dir",
        "-t",
        family,
        "-C",
        root,
        "-p",
        output,
        "-f",
        "-n",
        desc["name"],
        "-v",
        desc["version"],
        "--iteration",
        desc["release"],
        "-a",
        desc["arch"],
        "--license",
        desc["license"],
        "--maintainer",
        desc["maintainer"],
        "--url",
        desc["homepage"],
        "--description",
        desc["summary"] + "\n" + desc["description"].rstrip("\n"),
        "--source-date-epoch-default",
        str(desc["epoch"]),
        "--before-remove",
        meta["preremove"],
    ]
    for dep in desc["depends"][family]:
        args += ["--depends", fpm_dependency(dep, family)]
    for e in entries:
        if e["kind"] == "config":
            args += ["--config-files", e["dst"]]
    args += FAMILY_OPTIONS[family](desc, meta)
    if family == "rpm":
        for e in entries:
            if e["kind"] == "dir":
                args += ["--directories", e["dst"]]
            if e["mode"] not in (0o644, 0o755):
                args += ["--rpm-attr", "%o,root,root:%s" % (e["mode"], e["dst"])]
    # Inputs: paths relative to the staged root; a directory input brings its (possibly empty) self.
    args += [
        e["dst"].lstrip("/")
        for e in entries
        if e["kind"] != "dir" or not any(o["dst"].startswith(e["dst"] + "/") for o in entries)
    ]
    return args
