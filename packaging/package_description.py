"""The ONE declarative description of the DEB and RPM packages.

Everything a package is (name, version, dependencies per family, every file with its mode and its kind,
maintainer scripts, changelog) is decided here, as plain data. Two renderers read it and decide nothing:
``nfpm_config.py`` (the default packager) and ``fpm_command.py`` (``make dist PACKAGER=fpm``).

Layout on the target system (documented in docs/packaging.md):

- ``/usr/lib/vmsnapshot-linux/<version>/``: the runtime, byte for byte the tree of the extension zip
  (HandlerManifest.json, bin/handle.sh, vmsnapshot/, etc/). Versioned so an upgrade never mixes the
  files of two releases.
- ``/usr/bin/vmsnapshot``: the command-line entry point (``--help``, ``diagnose`` and the runtime's other
  commands).
- ``/etc/azure/<file>`` for every file in extension/etc, and the runtime's default configuration
  (``vmsnapshot.config.DEFAULT_FILE``, what its ``install`` writes): configuration files (``conffiles`` /
  ``%config(noreplace)``): an upgrade never overwrites one the administrator edited.
- ``/etc/azure/vmsnapshot/hooks.d/``: the pre/post hook directory, root only (0700), as the runtime
  creates it.
- man page, copyright (DEB) or license (RPM), and the changelog (DEB changelog.Debian.gz, RPM %changelog).
"""

import os

import buildinfo
import extension_zip
import package_files

NAME = "vmsnapshot-linux"
RELEASE = "1"  # packaging revision: Debian revision / RPM Release
LIB_ROOT = "/usr/lib/" + NAME
ENTRY_POINT = "/usr/bin/vmsnapshot"
CONFIG_DIR = "/etc/azure"
HOOKS_DIR = "/etc/azure/vmsnapshot/hooks.d"
MAN_PAGE = "/usr/share/man/man8/vmsnapshot.8.gz"
DOC_DIR = "/usr/share/doc/" + NAME
LICENSE_DIR = "/usr/share/licenses/" + NAME
LINTIAN_OVERRIDES = "/usr/share/lintian/overrides/" + NAME

# Pre/post script configs hold what runs as root: the runtime refuses them unless group and other have no
# access (Microsoft's rule for VMSnapshotScriptPluginConfig.json, error 317), so they ship as 0600.
PRIVATE_CONFIGS = ("VMSnapshotScriptPluginConfig.json",)

SUMMARY = "Azure VM snapshot extension runtime (application-consistent backup) and its CLI"
DESCRIPTION = """\
The in-guest runtime of the VM Snapshot Linux extension that Azure Backup
uses for application-consistent snapshots of a running virtual machine:
it freezes filesystems safely (never leaving one frozen), runs pre/post
hooks, snapshots the disks in parallel and reports status.
This package serves golden images and configuration management: the
runtime, the vmsnapshot command (diagnose and the runtime's other
commands), the default configuration under /etc/azure and the hook
directory. It starts no service.
"""


DEFAULT_MAINTAINER = "VM Snapshot Linux kit maintainers <vmsnapshot-kit@example.com>"


def maintainer():
    return os.environ.get("VMSNAPSHOT_MAINTAINER") or DEFAULT_MAINTAINER


def homepage():
    return os.environ.get("VMSNAPSHOT_HOMEPAGE") or "https://example.com/vmsnapshot-linux"


def lib_dir(version):
    return "%s/%s" % (LIB_ROOT, version)


# Dependencies per family. DEB: Debian/Ubuntu's python3 package. RPM: the virtual capability python(abi),
# which every distribution's interpreter package provides with its X.Y version: platform-python on
# RHEL 8 / Oracle Linux 8 ("Provides: python(abi) = 3.6", so the minimal install already satisfies it
# without the python36 module), python3 on RHEL 9, Fedora, SLES 15 (python3-base) and Azure Linux.
# rpm compares "3.10" > "3.6" segment by segment, so ">= 3.6" admits every later release.
DEPENDS = {
    "deb": ["python3 (>= 3.6)", "openssl"],
    "rpm": ["python(abi) >= 3.6", "openssl"],
}


def file_entry(dst, data, mode, kind="file", packager=None):
    """One file of the package. kind: file, config (never overwritten once edited), doc, license.
    packager: None for both families, or "deb" / "rpm" for a file only one family ships."""
    return {"dst": dst, "data": data, "mode": mode, "kind": kind, "packager": packager}


def dir_entry(dst, mode):
    """A directory the package owns even when empty."""
    return {"dst": dst, "data": None, "mode": mode, "kind": "dir", "packager": None}


# Directories the package owns, so removal deletes them once empty (RPM only owns what it lists; DEB
# lists them anyway). Shared system directories such as /usr/bin are never claimed.
OWNED_ROOTS = (LIB_ROOT, CONFIG_DIR, DOC_DIR, LICENSE_DIR)


def owned_dirs(contents):
    """dir entries (0755) for every directory under OWNED_ROOTS that holds a file and is not listed yet."""
    listed = {e["dst"] for e in contents if e["kind"] == "dir"}
    found = {}
    for e in contents:
        path = os.path.dirname(e["dst"])
        while any(path == root or path.startswith(root + "/") for root in OWNED_ROOTS):
            if path not in listed:
                found.setdefault(path, e["packager"] if path.startswith((DOC_DIR, LICENSE_DIR)) else None)
            path = os.path.dirname(path)
    return [dict(dir_entry(path, 0o755), packager=packager) for path, packager in sorted(found.items())]


def describe(ident=None, epoch=None):
    """The package description of one build: plain data (file contents as bytes), nothing written yet."""
    ident = ident or buildinfo.identity()
    epoch = buildinfo.source_date_epoch() if epoch is None else epoch
    version = ident.version
    lib = lib_dir(version)
    contents = []
    for arcname, data, mode in extension_zip.runtime_entries(ident):
        contents.append(file_entry("%s/%s" % (lib, arcname), data, mode))
        if arcname.startswith("etc/"):
            name = arcname[len("etc/") :]
            conf_mode = 0o600 if os.path.basename(name) in PRIVATE_CONFIGS else 0o644
            contents.append(file_entry("%s/%s" % (CONFIG_DIR, name), data, conf_mode, kind="config"))
    shipped = {e["dst"] for e in contents}
    default = package_files.runtime_default_config(buildinfo.EXTENSION)
    if default and default[0].startswith(CONFIG_DIR + "/") and default[0] not in shipped:
        contents.append(file_entry(default[0], default[1].encode(), 0o644, kind="config"))
    with open(package_files.LICENSE_FILE, "rb") as f:
        license_text = f.read()
    with open(package_files.LINTIAN_OVERRIDES_FILE, "rb") as f:
        lintian_overrides = f.read()
    contents += [
        file_entry(ENTRY_POINT, package_files.entry_point(lib), 0o755),
        file_entry(
            MAN_PAGE,
            package_files.man_page(version, epoch, lib, package_files.runtime_help(buildinfo.EXTENSION)),
            0o644,
            kind="doc",
        ),
        file_entry(DOC_DIR + "/copyright", package_files.debian_copyright(NAME, homepage()), 0o644, packager="deb"),
        file_entry(LICENSE_DIR + "/LICENSE", license_text, 0o644, kind="license", packager="rpm"),
        file_entry(LINTIAN_OVERRIDES, lintian_overrides, 0o644, packager="deb"),
        dir_entry(HOOKS_DIR, 0o700),
    ]
    contents += owned_dirs(contents)
    contents.sort(key=lambda e: e["dst"])
    return {
        "name": NAME,
        "version": version,
        "release": RELEASE,
        "arch": "all",  # pure Python and sh: DEB "all", RPM "noarch"
        "section": "admin",  # DEB Section
        "rpm_group": "System Environment/Base",  # RPM Group (deprecated by Fedora, still shown by rpm -qi)
        "priority": "optional",
        "maintainer": maintainer(),
        "vendor": ident.publisher,
        "homepage": homepage(),
        "license": "MIT",
        "summary": SUMMARY,
        "description": DESCRIPTION,
        "depends": DEPENDS,
        "contents": contents,
        # The one maintainer script: byte-code caches are all the package's own files can leave behind.
        "scripts": {"preremove": package_files.prerm(lib)},
        "changelog": package_files.changelog_entries(version, epoch, maintainer()),
        "epoch": epoch,
    }


def output_name(desc, family):
    """The conventional file name of a package (dpkg-name / rpm), the same nfpm and fpm choose."""
    if family == "deb":
        return "%s_%s-%s_all.deb" % (desc["name"], desc["version"], desc["release"])
    return "%s-%s-%s.noarch.rpm" % (desc["name"], desc["version"], desc["release"])
