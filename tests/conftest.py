"""Session-wide test set-up shared by every area of the kit.

The machine thaw guard runs for the whole session: if any machine filesystem is ever found frozen,
it is thawed within 100 ms and the run fails loudly at the end.
"""

import sys

import pytest

from harness.azurite import Azurite
from harness.certs import TenantCert, make_tls
from harness.freezeguard import MachineThawGuard

_guard = None


def pytest_sessionstart(session):
    global _guard
    _guard = MachineThawGuard()
    _guard.start()


def pytest_sessionfinish(session, exitstatus):
    if _guard is None:
        return
    _guard.stop()
    msg = _guard.report()
    if msg:
        sys.stderr.write("\n" + "!" * 78 + "\n" + msg + "\n" + "!" * 78 + "\n")
        session.exitstatus = 3


@pytest.fixture(scope="session")
def machine_guard():
    """The running guard, for tests that assert it stayed quiet."""
    return _guard


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    """A private CA and a server certificate for 127.0.0.1 (harness.certs.make_tls)."""
    return make_tls(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="session")
def azurite(tmp_path_factory, tls):
    """One in-memory Azurite over HTTPS for the session (runtime and unit tests)."""
    with Azurite(str(tmp_path_factory.mktemp("azurite")), tls=tls, in_memory=True) as a:
        yield a


@pytest.fixture(scope="session")
def tenant(tmp_path_factory):
    """The certificate protected settings are encrypted to."""
    return TenantCert(str(tmp_path_factory.mktemp("tenant")))
