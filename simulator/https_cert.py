"""Self-signed TLS material for the simulator's HTTPS front end.

One key and certificate are generated per process and shared by every simulated device, since
an RSA key costs tens of milliseconds and a fleet may hold a thousand devices. Clients of a
self-signed RouterOS service disable verification or pin the fingerprint, so sharing is
indistinguishable from per-device certificates for them.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate and key, with the SHA-256 fingerprint of the DER certificate."""

    cert_pem: bytes
    key_pem: bytes
    sha256_fingerprint: str


@functools.cache
def self_signed_certificate(common_name: str = "tikflow-simulator") -> Certificate:
    """Generate (once per process and name) a self-signed ECDSA P-256 certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return Certificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        sha256_fingerprint=hashlib.sha256(der).hexdigest(),
    )


@functools.cache
def server_ssl_context(common_name: str = "tikflow-simulator") -> ssl.SSLContext:
    """Return a shared server-side SSL context for the self-signed certificate."""
    certificate = self_signed_certificate(common_name)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain only reads files, so the PEM goes through a private temporary directory
    # that is removed as soon as the context holds the key.
    with tempfile.TemporaryDirectory(prefix="tikflow-tls-") as folder:
        cert_path = Path(folder) / "cert.pem"
        key_path = Path(folder) / "key.pem"
        cert_path.write_bytes(certificate.cert_pem)
        key_path.write_bytes(certificate.key_pem)
        key_path.chmod(0o600)
        context.load_cert_chain(cert_path, key_path)
    return context

