"""Property-based fuzzing of settings parsing and validation (issue 15): any byte string or JSON value as
the settings file, objectStr, customSettings or decrypted protected payload ends in a JobSpec or a coded
SettingsError whose message never carries a secret; never another exception.

A few thousand examples in `make test`; FUZZ_EXAMPLES=<n per test> runs more."""

import base64
import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vmsnapshot import codes
from vmsnapshot import settings as vs

from harness.jobs import b64json, ticks

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SECRET = "Zsecretsig0123456789Z"
USERINFO = "Zuserinfopw0123Z"
DISK = "https://acct.blob.core.windows.net/vhds/disk0.vhd?sv=2020-04-08&sr=b&sp=rw&sig=" + SECRET
ALLOWED_CODES = {codes.BAD_PARAMETER, codes.CERTIFICATE_NOT_FOUND, codes.COMMAND_TOO_LATE, codes.INVALID_LUN_LIST}

HOSTILE_TEXT = st.sampled_from(
    [
        "[" * 50000,
        '{"a":' * 50000,
        "[" * 65 + "]" * 65,
        '"' * 1000,
        "\\",
        '["\\"[[[["]',
        "\ufeff{}",
        '{"runtimeSettings": [' * 30 + "]}" * 30,
        "1e999999",
        "-" * 100,
        "\x00",
        "NaN",
        "[1,]",
    ]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40) | st.just(DISK),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(max_size=20)
            | st.sampled_from(
                [
                    "blobSASUri",
                    "backupMetadata",
                    "Key",
                    "Value",
                    "includedDisks",
                    "dataDiskLunList",
                    "statusBlobUri",
                    "objectStr",
                    "customSettings",
                    "taskId",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)
TEXT = st.one_of(HOSTILE_TEXT, st.text(max_size=200), JSON.map(json.dumps))
BYTES = st.one_of(st.binary(max_size=300), TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))


def good_public(**overrides):
    pub = {
        "locale": "en-us",
        "taskId": "fuzz-task",
        "commandToExecute": "snapshot",
        "commandStartTimeUTCTicks": ticks(),
        "vmType": "microsoft.compute/virtualmachines",
        "objectStr": b64json({"backupMetadata": [{"Key": "BackupTaskId", "Value": "t"}]}),
    }
    pub.update(overrides)
    return pub


def good_private(**overrides):
    priv = {
        "objectStr": b64json({"blobSASUri": [DISK]}),
        "statusBlobUri": "https://%s@acct.blob.core.windows.net/c/status?sig=%s" % (USERINFO, SECRET),
    }
    priv.update(overrides)
    return priv


def coded(fn, *args):
    """Run `fn`; a SettingsError must be coded and clean, anything else raised fails the test."""
    try:
        return fn(*args)
    except vs.SettingsError as e:
        assert e.code in ALLOWED_CODES, e.code
        assert isinstance(e.message, str) and e.message
        assert SECRET not in e.message and USERINFO not in e.message, e.message
        return None


def validate(public, private):
    return coded(vs.validate, 0, public, private)


def test_the_good_template_is_valid():
    spec = validate(good_public(), good_private())
    assert spec is not None and spec.blob_uris == [DISK]


@FUZZ
@given(BYTES)
def test_any_bytes_as_the_settings_file(data):
    fd, path = tempfile.mkstemp(prefix="fuzz-settings-")
    try:
        os.write(fd, data)
        os.close(fd)
        handler = coded(vs.read_settings_file, path)
    finally:
        os.unlink(path)
    if handler is not None:
        validate(handler.get("publicSettings"), good_private())


@FUZZ
@given(JSON)
def test_any_json_as_the_whole_settings_document(doc):
    fd, path = tempfile.mkstemp(prefix="fuzz-settings-")
    try:
        os.write(fd, json.dumps({"runtimeSettings": [{"handlerSettings": {"publicSettings": doc}}]}).encode())
        os.close(fd)
        handler = coded(vs.read_settings_file, path)
    finally:
        os.unlink(path)
    assert handler is not None
    validate(handler.get("publicSettings"), good_private())


@FUZZ
@given(st.one_of(BYTES.map(lambda b: base64.b64encode(b).decode()), JSON.map(b64json), TEXT, JSON), st.booleans())
def test_any_object_str(value, protected):
    if protected:
        validate(good_public(), good_private(objectStr=value))
    else:
        validate(good_public(objectStr=value), good_private())


@FUZZ
@given(st.one_of(TEXT, JSON, JSON.map(json.dumps)), st.booleans())
def test_any_custom_settings(value, protected):
    if protected:
        validate(good_public(), good_private(customSettings=value))
    else:
        validate(good_public(customSettings=value), good_private())


@FUZZ
@given(
    st.one_of(
        BYTES,
        JSON.map(lambda d: json.dumps(d).encode()),
        st.dictionaries(
            st.sampled_from(["objectStr", "statusBlobUri", "logsBlobUri", "customSettings"]), JSON, max_size=4
        ).map(lambda d: json.dumps(dict(good_private(), **d)).encode()),
    )
)
def test_any_decrypted_protected_payload(plain):
    private = coded(vs.parse_protected, plain)
    if private is not None:
        validate(good_public(), private)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "taskId",
                "locale",
                "vmType",
                "commandToExecute",
                "commandStartTimeUTCTicks",
                "statusBlobUri",
                "logsBlobUri",
                "customSettings",
            ]
        ),
        JSON,
        max_size=4,
    )
)
def test_any_public_field_values(overrides):
    validate(good_public(**overrides), good_private())
