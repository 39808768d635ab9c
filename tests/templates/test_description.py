"""The templates' description takes the extension identity from packaging/buildinfo.py, which reads the
runtime's defaults without running the runtime."""

import importlib.util
import os

from vmsnapkit.arm import description


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_identity_has_one_source():
    root = description.REPO_ROOT
    build = _load(os.path.join(root, "packaging", "buildinfo.py"), "buildinfo_for_test")
    runtime = _load(os.path.join(root, "extension", "vmsnapshot", "identity.py"), "identity_for_test")
    assert build.runtime_defaults() == (runtime.DEFAULT_PUBLISHER, runtime.DEFAULT_TYPE)
    assert (description.EXTENSION_PUBLISHER, description.EXTENSION_TYPE) == build.runtime_defaults()
    with open(os.path.join(root, "VERSION")) as f:
        version = f.read().strip()
    assert description.EXTENSION_VERSION == version
    assert description.TYPE_HANDLER_VERSION == ".".join(version.split(".")[:2]) == build.type_handler_version()


def test_a_build_time_override_does_not_reach_the_committed_templates(monkeypatch):
    monkeypatch.setenv("VMSNAPSHOT_PUBLISHER", "Contoso.Backup")
    build = _load(os.path.join(description.REPO_ROOT, "packaging", "buildinfo.py"), "buildinfo_override")
    assert build.identity().publisher == "Contoso.Backup"
    assert build.runtime_defaults()[0] == description.EXTENSION_PUBLISHER != "Contoso.Backup"
