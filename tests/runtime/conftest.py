"""Fixtures for the runtime tests: Azurite over HTTPS, a tenant certificate, the built zip, and a
fresh agent-style handler directory per test, for each runtime interpreter (3.6 and the newest)."""

import pytest

from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.handler import build_zip
from harness.interpreters import interpreter_or_skip, runtime_interpreters
from harness.jobs import SnapshotVM
from harness.secretscan import files_containing

INTERPRETERS = runtime_interpreters()


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    return make_tls(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory, tls):
    with Azurite(str(tmp_path_factory.mktemp("azurite")), tls=tls, in_memory=True) as a:
        yield a


@pytest.fixture(scope="session")
def tenant(tmp_path_factory):
    return TenantCert(str(tmp_path_factory.mktemp("tenant")))


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
