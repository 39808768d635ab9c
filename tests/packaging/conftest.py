"""Fixtures of the packaging tests (helpers in pkgtools.py)."""

import pytest
from pkgtools import build


@pytest.fixture(scope="session")
def dist(tmp_path_factory):
    """One build of the repository as `make dist` makes it."""
    return build(tmp_path_factory.mktemp("dist") / "out")
