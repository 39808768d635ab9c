"""Decrypt protectedSettings with the certificate the agent wrote, in memory only.

`openssl cms -decrypt -inform DER` handles 3DES and AES-256; `openssl smime` is the fallback for ancient
builds. The ciphertext goes in on stdin and the plaintext comes back on stdout: nothing touches disk.
"""

import base64
import binascii
import os
import re

from . import subp

_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")


class DecryptError(Exception):
    """Carries a message safe to report (it never contains plaintext)."""


def openssl_binary():
    for candidate in ("/usr/bin/openssl", "/bin/openssl", "/usr/local/bin/openssl"):
        if os.access(candidate, os.X_OK):
            return candidate
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(directory, "openssl")
        if directory and os.access(path, os.X_OK):
            return path
    return None


def key_files(cert_dir, thumbprint):
    name = thumbprint.upper()
    return os.path.join(cert_dir, name + ".crt"), os.path.join(cert_dir, name + ".prv")


def decrypt(protected_b64, thumbprint, cert_dir, timeout=30):
    """Return the decrypted bytes, or raise DecryptError naming what is wrong."""
    if not isinstance(thumbprint, str) or not _THUMBPRINT.match(thumbprint):
        raise DecryptError("protectedSettingsCertThumbprint must be 40 hexadecimal characters")
    crt, prv = key_files(cert_dir, thumbprint)
    for path, what in ((crt, "certificate"), (prv, "private key")):
        if not os.path.isfile(path):
            raise DecryptError("the %s for thumbprint %s is not in %s" % (what, thumbprint.upper(), cert_dir))
    if not isinstance(protected_b64, str):
        raise DecryptError("protectedSettings must be a base64 string")
    try:
        der = base64.b64decode(protected_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("protectedSettings is not valid base64")
    openssl = openssl_binary()
    if openssl is None:
        raise DecryptError("openssl is not installed")
    last = None
    for tool in ("cms", "smime"):
        try:
            out, _ = subp.run(
                [openssl, tool, "-decrypt", "-inform", "DER", "-recip", crt, "-inkey", prv], data=der, timeout=timeout
            )
            return out
        except subp.ProcessError as e:
            last = e
    raise DecryptError(
        "openssl could not decrypt protectedSettings with thumbprint %s (%s)"
        % (thumbprint.upper(), last.describe() if last else "unknown error")
    )
