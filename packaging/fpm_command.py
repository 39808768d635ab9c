"""Render the package description (package_description.py) as fpm command lines (``PACKAGER=fpm``).

fpm (github.com/jordansissel/fpm) is a Ruby gem: where it is installed, ``make dist PACKAGER=fpm``
builds the same DEB and RPM from the same description as nfpm does. It reads files from a staged root
(``-C``), so modes come from the staged tree; RPM-only attributes go through ``--rpm-attr``. The
argument lists are tested without fpm (tests/packaging/test_fpm_command.py).
"""

# fpm compresses with its own tools; gzip matches what nfpm writes.
FAMILY_OPTIONS = {
    "deb": lambda d, meta: ["--deb-priority", d["priority"], "--deb-user", "root", "--deb-group", "root",
                            "--deb-changelog", meta["debian_changelog"], "--deb-compression", "gz",
                            # only the files the description marks config are conffiles
                            "--deb-no-default-config-files"],
    "rpm": lambda d, meta: ["--rpm-os", "linux", "--rpm-summary", d["summary"], "--rpm-user", "root",
                            "--rpm-group", "root", "--rpm-changelog", meta["rpm_changelog"],
                            "--rpm-compression", "gzip"],
}


def for_family(entries, family):
    return [e for e in entries if e["packager"] in (None, family)]


def argv(desc, family, root, meta, output, fpm="fpm"):
    """The fpm command building desc's package of one family ("deb" or "rpm") into output."""
    entries = for_family(desc["contents"], family)
    args = [fpm, "-s", "dir", "-t", family, "-C", root, "-p", output, "-f",
            "-n", desc["name"], "-v", desc["version"], "--iteration", desc["release"], "-a", desc["arch"],
            "--license", desc["license"], "--vendor", desc["vendor"], "--maintainer", desc["maintainer"],
            "--url", desc["homepage"], "--category", desc["section"],
            "--description", desc["summary"] + "\n" + desc["description"].rstrip("\n"),
            "--source-date-epoch-default", str(desc["epoch"]),
            "--before-remove", meta["preremove"]]
    for dep in desc["depends"][family]:
        # fpm's neutral form is "name op version"; it rewrites it as "name (op version)" for a DEB.
        args += ["--depends", dep.replace("(", "").replace(")", "")]
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
    args += [e["dst"].lstrip("/") for e in entries
             if e["kind"] != "dir" or not any(o["dst"].startswith(e["dst"] + "/") for o in entries)]
    return args
