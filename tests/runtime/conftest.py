"""Fixtures for the runtime tests: the built zip and a fresh agent-style handler directory per test, for
each runtime interpreter (3.6 and the newest), on the session's Azurite and tenant certificate
(tests/conftest.py)."""

import pytest

from harness.handler import build_zip
from harness.interpreters import interpreter_or_skip, runtime_interpreters
from harness.jobs import SnapshotVM
from harness.secretscan import files_containing

INTERPRETERS = runtime_interpreters()


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory):
    return build_zip(str(tmp_path_factory.mktemp("dist")))


@pytest.fixture(params=[i[0] for i in INTERPRETERS])
def runtime_python(request):
    return interpreter_or_skip(request.param)


@pytest.fixture
def vm(tmp_path, azurite, tenant, built_zip, runtime_python, tls, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", tls["ca"])
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return SnapshotVM(str(tmp_path), azurite, tenant, built_zip, python=runtime_python)


def grep_tree(root, needles):
    """Every (file, needle) where a secret shows up on disk below `root`."""
    return files_containing(root, needles)
