"""The files a package carries besides the runtime, generated reproducibly from committed sources.

Templates live in packaging/templates/ (the /usr/bin entry point, the man page, the pre-removal script);
the license in packaging/LICENSE; release notes in packaging/changelog.json. Every output depends only on
the version, SOURCE_DATE_EPOCH and those files: gzip members carry no name and mtime 0.
"""

import calendar
import gzip
import io
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "templates")
LICENSE_FILE = os.path.join(HERE, "LICENSE")
LINTIAN_OVERRIDES_FILE = os.path.join(HERE, "lintian-overrides")
CHANGELOG_FILE = os.path.join(HERE, "changelog.json")
MAX_NOTE = 74  # "  * " + note fits Debian's 80 columns; chglog writes every note on one line


def _render(template, **values):
    with open(os.path.join(TEMPLATES, template)) as f:
        text = f.read()
    for key, value in values.items():
        text = text.replace("@%s@" % key, value)
    left = re.search(r"@[A-Z]+@", text)
    if left:
        raise ValueError("template %s: placeholder %s has no value" % (template, left.group(0)))
    return text


def gzip_bytes(data):
    """gzip -9n: no file name, mtime 0, so the bytes depend on the content only."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def entry_point(lib):
    return _render("vmsnapshot.in", LIBDIR=lib).encode()


def prerm(lib):
    return _render("prerm.in", LIBDIR=lib).encode()


def roff_literal(text):
    """Plain text safe inside a roff .nf block: escaped backslashes, no line read as a request."""
    lines = []
    for line in text.rstrip("\n").split("\n"):
        line = line.replace("\\", "\\e")
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _run_runtime(extension_dir, args):
    """Run the runtime being packaged (not the build machine's) with the build's Python; stdout or None."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LC_ALL": "C",
        "PYTHONPATH": extension_dir,
        "VMSNAPSHOT_CONFIG": os.devnull,
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-B", "-s"] + args,
            env=env,
            cwd=extension_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 and proc.stdout.strip() else None


def runtime_help(extension_dir):
    """`python3 -m vmsnapshot --help` of the runtime being packaged, so the man page never drifts from
    it; None when the runtime has no command line yet (or it fails)."""
    return _run_runtime(extension_dir, ["-m", "vmsnapshot", "--help"])


def runtime_default_config(extension_dir):
    """(path, text) of the configuration file the runtime's `install` writes when none exists
    (vmsnapshot.config.DEFAULT_PATH / DEFAULT_FILE), so the packages ship exactly that file; None when
    the runtime defines none."""
    out = _run_runtime(
        extension_dir,
        ["-c", "import json, vmsnapshot.config as c; print(json.dumps([c.DEFAULT_PATH, c.DEFAULT_FILE]))"],
    )
    if not out:
        return None
    path, text = json.loads(out)
    return path, text


def man_page(version, epoch, lib, help_text=None):
    date = time.strftime("%Y-%m-%d", time.gmtime(epoch))
    commands = (
        roff_literal(help_text)
        if help_text
        else "(this build's runtime printed no command summary; run vmsnapshot \\-\\-help)"
    )
    return gzip_bytes(_render("vmsnapshot.8.in", VERSION=version, DATE=date, LIBDIR=lib, COMMANDS=commands).encode())


def debian_copyright(name, homepage):
    """Machine-readable debian/copyright carrying the full license text of packaging/LICENSE."""
    with open(LICENSE_FILE) as f:
        lines = f.read().strip("\n").split("\n")
    holder = next(line for line in lines if line.startswith("Copyright"))
    body = [line for line in lines[1:] if not line.startswith("Copyright")]
    while body and not body[0].strip():
        body.pop(0)
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: %s\nSource: %s\n\nFiles: *\nCopyright: %s\nLicense: Expat\n"
        % (name, homepage, holder[len("Copyright (c) ") :] if holder.startswith("Copyright (c) ") else holder)
    )
    text += "".join(" %s\n" % line if line.strip() else " .\n" for line in body)
    return text.encode()


# ---------------------------------------------------------------------------------------------------------
# Changelog: one list of entries, rendered for nfpm (chglog), for fpm's --deb-changelog and --rpm-changelog.


def changelog_entries(version, epoch, maintainer):
    """Entries newest first: [{version, time (epoch seconds), author, changes}].

    A version not yet in changelog.json (a development or test build) gets an entry of its own, dated
    SOURCE_DATE_EPOCH, so every package's changelog starts with its own version as Debian requires.
    """
    with open(CHANGELOG_FILE) as f:
        raw = json.load(f)
    entries = []
    for item in raw:
        for note in item["changes"]:
            if len(note) > MAX_NOTE:
                raise ValueError(
                    "%s: note of %s longer than %d characters (Debian changelogs are 80 "
                    "columns; split it): %r" % (CHANGELOG_FILE, item["version"], MAX_NOTE, note)
                )
        stamp = calendar.timegm(time.strptime(item["date"], "%Y-%m-%d"))
        entries.append(
            {"version": item["version"], "time": stamp, "author": maintainer, "changes": list(item["changes"])}
        )
    if not entries or entries[0]["version"] != version:
        entries.insert(
            0,
            {
                "version": version,
                "time": epoch,
                "author": maintainer,
                "changes": ["Build of version %s; no release notes recorded yet." % version],
            },
        )
    return entries


def chglog(entries, release):
    """nfpm's changelog format (github.com/goreleaser/chglog), as JSON (a subset of YAML)."""
    return (
        json.dumps(
            [
                {
                    "semver": "%s-%s" % (e["version"], release),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["time"])),
                    "packager": e["author"],
                    "deb": {"urgency": "medium", "distributions": ["unstable"]},
                    "changes": [{"note": c} for c in e["changes"]],
                }
                for e in entries
            ],
            indent=2,
        )
        + "\n"
    )


def debian_changelog(name, entries, release):
    out = []
    for e in entries:
        out.append("%s (%s-%s) unstable; urgency=medium\n" % (name, e["version"], release))
        out.extend("  * %s\n" % c for c in e["changes"])
        out.append(
            "\n -- %s  %s\n\n" % (e["author"], time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(e["time"])))
        )
    return "".join(out).rstrip("\n") + "\n"


def rpm_changelog(entries, release):
    out = []
    for e in entries:
        out.append(
            "* %s %s - %s-%s\n"
            % (time.strftime("%a %b %d %Y", time.gmtime(e["time"])), e["author"], e["version"], release)
        )
        out.extend("- %s\n" % c for c in e["changes"])
        out.append("\n")
    return "".join(out).rstrip("\n") + "\n"
