"""A throw-away certificate authority and server certificate for the loopback emulator.

The emulator is HTTPS because the Azure SDKs refuse bearer tokens over plain HTTP, and the kit must keep
that rule on. Clients trust the emulator by pointing `connection_verify` / REQUESTS_CA_BUNDLE at `ca.pem`.
A real CA plus a leaf (rather than one self-signed leaf) passes strict X.509 checks (Python 3.13's
VERIFY_X509_STRICT, OpenSSL 3) and every client library seen so far.
"""

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertFiles:
    ca: str  # PEM of the CA: what clients trust
    cert: str  # PEM of the server certificate followed by the CA (a full chain)
    key: str  # PEM of the server key


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certificates(directory, days=2):
    """Write ca.pem, server.pem (chain) and server.key into `directory`; SAN IP:127.0.0.1, DNS:localhost."""
    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("vmsnapshot-kit test CA"))
        .issuer_name(_name("vmsnapshot-kit test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = CertFiles(
        ca=os.path.join(directory, "ca.pem"),
        cert=os.path.join(directory, "server.pem"),
        key=os.path.join(directory, "server.key"),
    )
    pem = serialization.Encoding.PEM
    with open(files.ca, "wb") as f:
        f.write(ca_cert.public_bytes(pem))
    with open(files.cert, "wb") as f:
        f.write(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    with open(os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files
