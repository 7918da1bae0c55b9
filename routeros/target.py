"""Connection details for one RouterOS device, and the TLS policy they imply."""

from __future__ import annotations

import hashlib
import hmac
import re
import ssl
from dataclasses import dataclass, fields
from typing import Literal

from routeros.errors import TlsVerificationFailed
from routeros.values import check_encoding

Transport = Literal["api", "api-ssl", "rest", "ssh"]

TRANSPORTS: tuple[Transport, ...] = ("api", "api-ssl", "rest", "ssh")

# RouterOS service defaults. REST is served by the www-ssl service (or www from 7.9).
DEFAULT_PORTS: dict[Transport, int] = {"api": 8728, "api-ssl": 8729, "rest": 443, "ssh": 22}

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class DeviceTarget:
    """Address, credentials and connection policy of one device.

    ``repr()`` and ``str()`` show the password as ``***``.

    Attributes:
        host: Host name or IP address.
        port: TCP port of the service, see ``DEFAULT_PORTS``.
        transport: ``api`` (8728), ``api-ssl`` (8729), ``rest`` (HTTPS, or HTTP when
            ``rest_tls`` is False) or ``ssh``.
        username: RouterOS user. The SSH transport appends its terminal options itself.
        password: Password of that user.
        tls_fingerprint: SHA-256 of the device certificate (64 hex digits, colons allowed).
            When set, the certificate is accepted only if it matches, and no CA or host name
            check is made. Used by ``api-ssl`` and ``rest``.
        tls_ca_file: PEM file of the CA that signed the device certificate. The host name
            (or IP address) must match the certificate as usual.
        tls_verify: With neither of the two above, True verifies against the system CAs and
            False accepts any certificate, including RouterOS's anonymous Diffie-Hellman mode.
        encoding: Codec for text on the wire. Bytes that do not decode come back as
            ``\\xHH`` escapes, see ``routeros.values.decode_text``.
        connect_timeout: Seconds allowed for TCP connect, TLS and login.
        command_timeout: Seconds allowed for one command, from request to the last reply.
        ssh_host_key: Pinned SSH host key, either ``SHA256:<base64>`` as ``ssh-keygen -l``
            prints it or an OpenSSH public key line. None accepts any host key.
        rest_tls: For ``rest`` only: False talks plain HTTP (RouterOS 7.9 and later).
    """

    host: str
    port: int
    transport: Transport
    username: str
    password: str
    tls_fingerprint: str | None = None
    tls_ca_file: str | None = None
    tls_verify: bool = True
    encoding: str = "utf-8"
    connect_timeout: float = 10
    command_timeout: float = 30
    ssh_host_key: str | None = None
    rest_tls: bool = True

    def __post_init__(self) -> None:
        if not self.host or any(char.isspace() for char in self.host):
            raise ValueError(f"invalid host {self.host!r}: expected a host name or IP address")
        if not 0 < self.port < 65536:
            raise ValueError(f"invalid port {self.port}: expected 1 to 65535")
        if self.transport not in TRANSPORTS:
            raise ValueError(
                f"invalid transport {self.transport!r}: expected one of {', '.join(TRANSPORTS)}"
            )
        if not self.username:
            raise ValueError("missing username: RouterOS has no anonymous login")
        for name in ("connect_timeout", "command_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"invalid {name} {getattr(self, name)!r}: expected seconds > 0")
        if (
            self.transport == "rest"
            and not self.rest_tls
            and (self.tls_fingerprint or self.tls_ca_file)
        ):
            raise ValueError(
                "tls_fingerprint and tls_ca_file need HTTPS: set rest_tls=True or drop them"
            )
        object.__setattr__(self, "encoding", check_encoding(self.encoding))
        if self.tls_fingerprint is not None:
            object.__setattr__(self, "tls_fingerprint", normalize_fingerprint(self.tls_fingerprint))

    def __repr__(self) -> str:
        shown = []
        for field in fields(self):
            value = getattr(self, field.name)
            shown.append(f"{field.name}={'***' if field.name == 'password' else repr(value)}")
        return f"DeviceTarget({', '.join(shown)})"

    __str__ = __repr__

    def describe(self) -> str:
        """Return ``transport://user@host:port`` for messages and logs (no secret in it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{self.username}@{host}:{self.port}"


def normalize_fingerprint(fingerprint: str) -> str:
    """Return a SHA-256 fingerprint as 64 lowercase hex digits.

    Raises:
        ValueError: The text is not 32 bytes of hex, with or without colons.
    """
    compact = fingerprint.strip().replace(":", "").lower()
    if not _FINGERPRINT.match(compact):
        raise ValueError(
            f"invalid TLS fingerprint {fingerprint!r}: expected the certificate's SHA-256 as "
            "64 hex digits, colons allowed"
        )
    return compact


def certificate_fingerprint(der: bytes) -> str:
    """Return the SHA-256 fingerprint of a DER certificate as 64 lowercase hex digits."""
    return hashlib.sha256(der).hexdigest()


def build_ssl_context(target: DeviceTarget) -> ssl.SSLContext:
    """Create the client TLS context that implements the target's verification policy.

    With a pinned fingerprint the context itself verifies nothing; the caller must run
    ``verify_peer_certificate`` on the connection before sending credentials.

    Raises:
        TlsVerificationFailed: The CA file cannot be read.
    """
    if target.tls_fingerprint is not None:
        return _unverified_context(allow_anonymous=False)
    if target.tls_ca_file is not None:
        try:
            return ssl.create_default_context(cafile=target.tls_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsVerificationFailed(
                f"cannot load CA file {target.tls_ca_file!r} for {target.describe()}: {exc}"
            ) from None
    if target.tls_verify:
        return ssl.create_default_context()
    return _unverified_context(allow_anonymous=True)


def _unverified_context(*, allow_anonymous: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if allow_anonymous:
        # API-SSL without a certificate only offers anonymous Diffie-Hellman suites, which
        # OpenSSL hides below security level 0. Builds without them keep the defaults.
        try:
            context.set_ciphers("DEFAULT:ADH:@SECLEVEL=0")
        except ssl.SSLError:
            pass
    return context


def verify_peer_certificate(
    ssl_object: ssl.SSLObject | ssl.SSLSocket | None, target: DeviceTarget
) -> None:
    """Check the peer certificate against the target's pinned fingerprint, if it has one.

    Raises:
        TlsVerificationFailed: There is no TLS session or certificate, or the fingerprint
            differs. The message shows the fingerprint the device presented.
    """
    expected = target.tls_fingerprint
    if expected is None:
        return
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        raise TlsVerificationFailed(
            f"{target.describe()} presented no certificate, so the pinned fingerprint cannot match"
        )
    actual = certificate_fingerprint(der)
    if not hmac.compare_digest(actual, expected):
        raise TlsVerificationFailed(
            f"certificate fingerprint mismatch for {target.describe()}: expected {expected}, "
            f"device presented {actual}; update tls_fingerprint if the certificate was replaced"
        )
