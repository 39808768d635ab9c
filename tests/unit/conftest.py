"""Unit tests of the runtime modules (extension/vmsnapshot), one test file per module, run in-process.

They import the runtime from the source tree, as the engine tests do; whatever needs a service uses the
real one (Azurite over HTTPS, the real openssl)."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTENSION = os.path.join(ROOT, "extension")
if EXTENSION not in sys.path:
    sys.path.insert(0, EXTENSION)

from harness.azurite import Azurite  # noqa: E402
from harness.certs import TenantCert, make_tls  # noqa: E402


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
