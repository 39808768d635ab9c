"""Which guest agents tests/agent drive: the matrix (Debian's newest unpacked package in the kit cache, the
upstream release unpacked from the vendored tarball, each on its interpreters), or only an explicit WAAGENT_DIR
(unpacked .deb or source tree). Fast: nothing of the agent is imported."""

import os
import sys

from harness import guestagent


def fake_agent(root, layout):
    """A directory that looks like an unpacked .deb ("deb") or an upstream checkout ("source")."""
    package = os.path.join(root, *(["usr", "lib", "python3", "dist-packages"] if layout == "deb" else []))
    os.makedirs(os.path.join(package, "azurelinuxagent", "common"))
    with open(os.path.join(package, "azurelinuxagent", "common", "version.py"), "w") as f:
        f.write("AGENT_VERSION = '0.0.0'\n")
    return package


def test_newest_unpacked_package_in_the_cache_wins(tmp_path, monkeypatch):
    cache = str(tmp_path)
    fake_agent(os.path.join(cache, "waagent-2.7.3.0-4.1"), "deb")
    newest = fake_agent(os.path.join(cache, "waagent-2.10.0.8-1"), "deb")
    os.makedirs(os.path.join(cache, "waagent-9.9.9-1"))  # a broken unpack is ignored
    monkeypatch.setenv("KIT_CACHE", cache)
    monkeypatch.delenv("WAAGENT_DIR", raising=False)
    assert guestagent.find_agent() == (newest, os.path.join(cache, "waagent-2.10.0.8-1"))


def test_waagent_dir_takes_an_upstream_source_tree(tmp_path, monkeypatch):
    tree = str(tmp_path / "WALinuxAgent")
    fake_agent(tree, "source")
    monkeypatch.setenv("WAAGENT_DIR", tree)
    assert guestagent.find_agent() == (tree, tree)


def test_a_wrong_waagent_dir_is_named_not_silently_replaced(tmp_path, monkeypatch):
    fake_agent(os.path.join(str(tmp_path), "waagent-2.7.3.0-4.1"), "deb")
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    monkeypatch.setenv("WAAGENT_DIR", str(tmp_path / "typo"))
    root, why = guestagent.find_agent()
    assert root is None and "WAAGENT_DIR=%s" % (tmp_path / "typo") in why


def test_nothing_unpacked_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    monkeypatch.delenv("WAAGENT_DIR", raising=False)
    root, why = guestagent.find_agent()
    assert root is None and "make waagent" in why


def test_the_matrix_names_every_combination_and_why_one_is_missing(tmp_path, monkeypatch):
    fake_agent(os.path.join(str(tmp_path), "waagent-2.7.3.0-4.1"), "deb")
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    monkeypatch.delenv("WAAGENT_DIR", raising=False)
    matrix = {c.id: c for c in guestagent.agent_matrix()}
    assert sorted(matrix) == ["debian-2.7.3-py3.11", "upstream-2.15-py3.11", "upstream-2.15-py3.13"]
    assert "make waagent-upstream" in matrix["upstream-2.15-py3.11"].missing
    assert matrix["upstream-2.15-py3.13"].python is None
    debian = matrix["debian-2.7.3-py3.11"]
    if sys.version_info[:2] == (3, 11):
        assert (debian.package_root, debian.python, debian.missing) == (
            os.path.join(str(tmp_path), "waagent-2.7.3.0-4.1", "usr", "lib", "python3", "dist-packages"),
            sys.executable,
            None,
        )


def test_waagent_dir_replaces_the_matrix(tmp_path, monkeypatch):
    tree = str(tmp_path / "WALinuxAgent")
    fake_agent(tree, "source")
    monkeypatch.setenv("WAAGENT_DIR", tree)
    assert guestagent.agent_matrix() == [guestagent.AgentCombo("waagent-dir", tree, sys.executable, None)]
