"""The Python interpreters the runtime is tested under: the oldest (3.6) and the newest present.

They come from pyenv builds in the machine image; a missing one is skipped with a printed reason.
"""

import glob
import os
import subprocess


def pyenv_root():
    try:
        return subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        root = os.path.expanduser("~/.pyenv")
        return root if os.path.isdir(root) else None


def _version_key(path):
    name = os.path.basename(os.path.dirname(os.path.dirname(path)))
    return tuple(int(p) if p.isdigit() else 0 for p in name.split("."))


def runtime_interpreters():
    """[(label, path or None, skip reason)] for the oldest supported and the newest interpreter."""
    root = pyenv_root()
    found = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python"))) if root else []
    found = [p for p in found if os.access(p, os.X_OK)]
    found.sort(key=_version_key)
    oldest = [p for p in found if _version_key(p)[:2] == (3, 6)]
    out = []
    if oldest:
        out.append(("py3.6", oldest[0], None))
    else:
        out.append(("py3.6", None, "no Python 3.6 interpreter under pyenv (%s)" % (root or "pyenv not found")))
    newest = found[-1] if found else "/usr/bin/python3"
    label = "py" + ".".join(str(x) for x in _version_key(newest)[:2]) if found else "py3"
    out.append(
        (
            label,
            newest if os.path.exists(newest) else None,
            None if os.path.exists(newest) else "no newest interpreter found",
        )
    )
    return out


def interpreter_or_skip(label):
    """The path of the runtime interpreter `label`; skips the test, printing why, when it is missing."""
    import pytest

    _, path, reason = [i for i in runtime_interpreters() if i[0] == label][0]
    if path is None:
        print("SKIP %s: %s" % (label, reason))
        pytest.skip(reason)
    return path
