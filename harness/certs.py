"""Certificates made at test time with the real openssl: a TLS CA + server certificate for Azurite and
the ARM emulator, and a tenant certificate that protected settings are encrypted to (as CRP does)."""

import os
import subprocess


def _openssl(*args, cwd=None, data=None):
    return subprocess.run(["openssl", *args], cwd=cwd, input=data, check=True, capture_output=True).stdout


def make_tls(directory, hosts=("127.0.0.1", "localhost")):
    """A private CA and a server certificate for `hosts`. Returns dict(ca, cert, key)."""
    os.makedirs(directory, exist_ok=True)
    ca, ca_key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca.key")
    cert, key = os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")
    if os.path.exists(cert):
        return {"ca": ca, "cert": cert, "key": key}
    # Extensions that strict verifiers (Python 3.13's VERIFY_X509_STRICT) insist on.
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=vmsnapshot test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
        "-keyout",
        ca_key,
        "-out",
        ca,
    )
    csr = os.path.join(directory, "server.csr")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % hosts[0], "-keyout", key, "-out", csr)
    san = ",".join(("IP:%s" % h) if h.replace(".", "").isdigit() or ":" in h else ("DNS:%s" % h) for h in hosts)
    ext = os.path.join(directory, "ext.cnf")
    with open(ext, "w") as f:
        f.write(
            "subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nsubjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid:always\n" % san
        )
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        ext,
        "-out",
        cert,
    )
    return {"ca": ca, "cert": cert, "key": key}


class TenantCert(object):
    """The certificate CRP encrypts protectedSettings to; the agent writes it as <THUMB>.crt/.prv."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.cert = os.path.join(directory, "tenant.crt")
        self.key = os.path.join(directory, "tenant.key")
        if not os.path.exists(self.cert):
            _openssl(
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=tenant",
                "-keyout",
                self.key,
                "-out",
                self.cert,
            )
        fp = _openssl("x509", "-in", self.cert, "-noout", "-fingerprint", "-sha1").decode()
        self.thumbprint = fp.strip().split("=", 1)[1].replace(":", "").upper()

    def install(self, lib_dir):
        """Lay the pair out exactly as the agent does: <lib>/<THUMB>.crt and .prv."""
        os.makedirs(lib_dir, exist_ok=True)
        for src, ext in ((self.cert, ".crt"), (self.key, ".prv")):
            dst = os.path.join(lib_dir, self.thumbprint + ext)
            with open(src, "rb") as f, open(dst, "wb") as g:
                g.write(f.read())
            os.chmod(dst, 0o600)

    def encrypt(self, plaintext, cipher="-des3"):
        """base64 of DER CMS EnvelopedData, as protectedSettings carries it (3DES default, -aes256 for FIPS)."""
        import base64

        der = _openssl(
            "cms",
            "-encrypt",
            "-binary",
            "-outform",
            "DER",
            cipher,
            self.cert,
            data=plaintext if isinstance(plaintext, bytes) else plaintext.encode(),
        )
        return base64.b64encode(der).decode()
