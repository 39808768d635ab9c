"""sasuri.py: one parse of a blob SAS URI for settings validation and the storage client."""

import pytest
from vmsnapshot.sasuri import SasUri, SasUriError, is_loopback

SIG = "sv=2020-04-08&sr=b&sp=rcw&sig=TOPSECRET%2Bsig"


def test_parts_of_an_azure_blob_uri():
    u = SasUri("https://acct.blob.core.windows.net/vhds/disk0.vhd?" + SIG)
    assert (u.scheme, u.host, u.port, u.path) == ("https", "acct.blob.core.windows.net", 443, "/vhds/disk0.vhd")
    assert u.params["sig"] == "TOPSECRET%2Bsig" and u.key == ("https", "acct.blob.core.windows.net", 443)
    assert u.request_path() == "/vhds/disk0.vhd?" + SIG
    assert u.request_path("comp=snapshot") == "/vhds/disk0.vhd?" + SIG + "&comp=snapshot"
    assert u.host_header == "acct.blob.core.windows.net"
    assert u.blob_problem() is None and u.transport_problem() is None


def test_ports_ipv6_and_userinfo():
    u = SasUri("http://[::1]:10000/devstoreaccount1/c/b?sig=x")
    assert (u.host, u.port, u.host_header) == ("::1", 10000, "[::1]:10000") and u.blob_problem() is None
    u = SasUri("https://user:pw@127.0.0.1:8443/a/c/b?sig=x")
    assert (u.host, u.port, u.has_userinfo) == ("127.0.0.1", 8443, True) and "pw" not in repr(u)
    assert SasUri("HTTP://LOCALHOST/a/b").scheme == "http"
    assert SasUri("https://stack.local.azurestack.external/c/b").query is None


def test_repr_and_str_never_show_the_signature():
    u = SasUri("https://acct.blob.core.windows.net/vhds/disk0.vhd?" + SIG)
    assert "TOPSECRET" not in repr(u) and "TOPSECRET" not in str(u)
    assert str(u) == "https://acct.blob.core.windows.net/vhds/disk0.vhd"


@pytest.mark.parametrize(
    "text",
    ["not a uri", "https//x/y", "https://h:99999/c/b?sig=x", "https://h:p/c/b", "https://[::1/c/b?sig=x", None, 5],
)
def test_text_that_is_no_uri(text):
    with pytest.raises(SasUriError) as e:
        SasUri(text)
    assert "sig" not in str(e.value)


@pytest.mark.parametrize(
    "uri, problem",
    [
        ("ftp://h/c/b?sig=x", "not an http(s) URI"),
        ("https://h/c/b", "not an http(s) URI"),
        ("https://h/c/b?sig=x#frag", "not an http(s) URI"),
        ("https://h/c?sig=x", "does not name a container and a blob"),
        ("https://h/c/b?sv=1", "no SAS signature"),
        ("https://h/c/b?sig=", "no SAS signature"),
        ("http://example.invalid/c/b?sig=x", "plain http to example.invalid"),
        ("http://127.attacker.example/c/b?sig=x", "plain http"),
    ],
)
def test_blob_problems(uri, problem):
    assert problem in SasUri(uri).blob_problem()


def test_signature_not_required_when_asked():
    assert SasUri("https://h/c/b?sv=1").blob_problem(require_sig=False) is None


def test_transport_problems():
    assert "unsupported URI scheme ftp" in SasUri("ftp://h/c/b").transport_problem()
    assert SasUri("http://127.0.0.1:1/c/b").transport_problem() is None


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("localhost", True),
        ("[::1]", True),
        ("::1", True),
        ("0177.0.0.1", False),
        ("127.1", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_is_loopback_from_the_text_alone(host, loopback):
    assert is_loopback(host) is loopback
