"""Unit tests for routeros.target: validation, secret masking and TLS policy."""

import ssl

import pytest

from routeros.errors import TlsVerificationFailed
from routeros.target import (
    DeviceTarget,
    build_ssl_context,
    certificate_fingerprint,
    normalize_fingerprint,
    verify_peer_certificate,
)

FINGERPRINT = "AB:" * 31 + "AB"


def make_target(**overrides: object) -> DeviceTarget:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 8728,
        "transport": "api",
        "username": "admin",
        "password": "hunter2-secret",
    }
    values.update(overrides)
    return DeviceTarget(**values)  # type: ignore[arg-type]


def test_target_repr_masks_password() -> None:
    """repr() and str() show *** instead of the password."""
    target = make_target()
    assert "hunter2-secret" not in repr(target)
    assert "hunter2-secret" not in str(target)
    assert "password=***" in repr(target)
    assert "hunter2-secret" not in target.describe()


def test_target_describe_brackets_ipv6() -> None:
    """IPv6 hosts are bracketed in the description."""
    assert make_target(host="::1").describe() == "api://admin@[::1]:8728"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"host": ""}, "invalid host"),
        ({"port": 0}, "invalid port"),
        ({"port": 70000}, "invalid port"),
        ({"transport": "telnet"}, "invalid transport"),
        ({"username": ""}, "missing username"),
        ({"command_timeout": 0}, "invalid command_timeout"),
        ({"encoding": "klingon"}, "unknown text encoding"),
        ({"tls_fingerprint": "abc"}, "invalid TLS fingerprint"),
        ({"transport": "rest", "rest_tls": False, "tls_fingerprint": "ab" * 32}, "need HTTPS"),
    ],
)
def test_target_rejects_bad_values(overrides: dict[str, object], fragment: str) -> None:
    """Each invalid field raises ValueError naming it."""
    with pytest.raises(ValueError, match=fragment):
        make_target(**overrides)


def test_target_normalizes_fingerprint_and_encoding() -> None:
    """Fingerprints lose colons and case; encodings get their canonical name."""
    target = make_target(tls_fingerprint=FINGERPRINT, encoding="CP1251")
    assert target.tls_fingerprint == "ab" * 32
    assert target.encoding == "cp1251"
    assert normalize_fingerprint(" " + "AB" * 32 + " ") == "ab" * 32


def test_ssl_context_policies() -> None:
    """Pinning and tls_verify=False disable CA checks; the default verifies."""
    pinned = build_ssl_context(make_target(transport="api-ssl", tls_fingerprint="ab" * 32))
    assert pinned.verify_mode == ssl.CERT_NONE
    assert pinned.check_hostname is False
    default = build_ssl_context(make_target(transport="api-ssl"))
    assert default.verify_mode == ssl.CERT_REQUIRED
    assert default.check_hostname is True
    loose = build_ssl_context(make_target(transport="api-ssl", tls_verify=False))
    assert loose.verify_mode == ssl.CERT_NONE


def test_ssl_context_missing_ca_file() -> None:
    """An unreadable CA file is a TLS verification failure naming the file."""
    with pytest.raises(TlsVerificationFailed, match="no-such-ca.pem"):
        build_ssl_context(
            make_target(transport="api-ssl", tls_ca_file="/nonexistent/no-such-ca.pem")
        )


class _FakeSslObject:
    def __init__(self, der: bytes | None) -> None:
        self._der = der

    def getpeercert(self, binary_form: bool = False) -> bytes | None:
        return self._der


def test_verify_peer_certificate_pins_by_sha256() -> None:
    """A matching certificate passes; a different one fails with both fingerprints shown."""
    der = b"certificate bytes"
    good = make_target(transport="api-ssl", tls_fingerprint=certificate_fingerprint(der))
    verify_peer_certificate(_FakeSslObject(der), good)  # type: ignore[arg-type]
    bad = make_target(transport="api-ssl", tls_fingerprint="00" * 32)
    with pytest.raises(TlsVerificationFailed, match="fingerprint mismatch") as info:
        verify_peer_certificate(_FakeSslObject(der), bad)  # type: ignore[arg-type]
    assert certificate_fingerprint(der) in str(info.value)
    with pytest.raises(TlsVerificationFailed, match="no certificate"):
        verify_peer_certificate(_FakeSslObject(None), bad)  # type: ignore[arg-type]
