"""Unit tests for routeros.errors: one mapping from every failure source to typed errors."""

import ssl

import httpx
import pytest
from librouteros import exceptions as lro

from routeros.errors import (
    AlreadyExists,
    AuthenticationFailed,
    CommandFailed,
    ConnectionLost,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    InvalidValue,
    ItemNotFound,
    PermissionDenied,
    ProtocolViolation,
    TlsVerificationFailed,
    UnknownParameter,
    UnknownPath,
    map_error,
)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("invalid user name or password (6)", AuthenticationFailed),
        ("cannot log in", AuthenticationFailed),
        ("not enough permissions (9)", PermissionDenied),
        ("no such command or directory (aasasa), no such command prefix", UnknownPath),
        ("bad command name foo (line 1 column 5)", UnknownPath),
        ("no such item (4)", ItemNotFound),
        ("failure: already have such address", AlreadyExists),
        ("failure: secret with the same name already exists", AlreadyExists),
        ("input does not match any value of interface", InvalidValue),
        ("invalid value for argument address", InvalidValue),
        ("invalid value of power-cycle-ping-enabled, must be either yes or no", InvalidValue),
        ("missing value(s) of argument(s) numbers", InvalidValue),
        ("unknown parameter vrf", UnknownParameter),
        ("expected end of command (line 1 column 17)", UnknownParameter),
        ("interrupted", CommandFailed),
        ("Session closed", DeviceTimeout),
    ],
)
def test_map_error_classifies_device_messages(message: str, expected: type) -> None:
    """Real trap, REST and CLI texts map to their typed error and keep the message."""
    error = map_error(message, action="/ip/address/add")
    assert type(error) is expected
    assert error.device_message == message
    assert message in str(error)
    assert str(error).startswith("/ip/address/add failed")


def test_map_error_uses_category_when_text_is_unknown() -> None:
    """A category-1 trap with unfamiliar text is still an InvalidValue."""
    assert isinstance(map_error("value out of bounds", category=1), InvalidValue)
    assert type(map_error("something odd", category=4)) is CommandFailed


def test_map_error_http_status_fallbacks() -> None:
    """HTTP status decides when the body has no recognisable detail."""
    assert isinstance(map_error("Unauthorized", http_status=401), AuthenticationFailed)
    assert isinstance(map_error("Forbidden", http_status=403), PermissionDenied)
    assert isinstance(map_error("", http_status=404), UnknownPath)
    assert isinstance(map_error("", http_status=404, not_found=ItemNotFound), ItemNotFound)
    assert isinstance(map_error("Bad Request", http_status=400), CommandFailed)
    assert isinstance(map_error("unknown parameter vrf", http_status=400), UnknownParameter)


def test_map_error_redacts_password() -> None:
    """The password never appears in the error text, whatever the source."""
    secret = "s3cr3t-pw"
    from_text = map_error(f"bad thing with {secret}", secret=secret)
    from_exc = map_error(OSError(f"refused {secret}"), secret=secret)
    assert secret not in str(from_text)
    assert secret not in str(from_exc)
    assert "***" in str(from_text)


def test_map_error_librouteros_traps() -> None:
    """librouteros trap exceptions keep message and category."""
    single = map_error(lro.TrapError(message="no such item", category=0))
    assert isinstance(single, ItemNotFound)
    multi = map_error(
        lro.MultiTrapError(
            lro.TrapError(message="no such command or directory (x)", category=0),
            lro.TrapError(message="no such command prefix"),
        )
    )
    assert isinstance(multi, UnknownPath)
    assert multi.category == 0


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (lro.ConnectionClosed("closed"), ConnectionLost),
        (lro.FatalError("session terminated on request"), ConnectionLost),
        (lro.ProtocolError("Unknown controll byte"), ProtocolViolation),
        (ConnectionRefusedError(111, "refused"), DeviceUnreachable),
        (OSError(113, "No route to host"), DeviceUnreachable),
        (TimeoutError(), DeviceTimeout),
        (ssl.SSLCertVerificationError("self-signed"), TlsVerificationFailed),
        (httpx.ConnectTimeout("t"), DeviceTimeout),
        (httpx.ReadTimeout("t"), DeviceTimeout),
        (httpx.ConnectError("refused"), DeviceUnreachable),
        (httpx.RemoteProtocolError("eof"), ConnectionLost),
        (RuntimeError("bug"), CommandFailed),
    ],
)
def test_map_error_exceptions(exc: BaseException, expected: type) -> None:
    """Transport exceptions map to the documented classes."""
    assert type(map_error(exc)) is expected


def test_retryable_split() -> None:
    """Network faults are retryable; answers from the device are not."""
    retryable = [DeviceUnreachable, DeviceTimeout, ConnectionLost, ProtocolViolation]
    final = [
        AuthenticationFailed,
        PermissionDenied,
        TlsVerificationFailed,
        InvalidValue,
        UnknownParameter,
        UnknownPath,
        ItemNotFound,
        AlreadyExists,
        CommandFailed,
    ]
    for error_class in retryable:
        assert error_class("x").retryable is True
    for error_class in final:
        assert error_class("x").retryable is False
    assert issubclass(CommandFailed, DeviceError)


def test_map_error_passes_device_errors_through() -> None:
    """A DeviceError given to map_error comes back unchanged."""
    error = ItemNotFound("gone")
    assert map_error(error) is error


def test_httpx_connect_error_caused_by_tls_is_tls_failure() -> None:
    """A connect error whose cause is an SSL error is a TLS failure, not unreachable."""
    try:
        try:
            raise ssl.SSLError("handshake failure")
        except ssl.SSLError as cause:
            raise httpx.ConnectError("tls") from cause
    except httpx.ConnectError as exc:
        assert isinstance(map_error(exc), TlsVerificationFailed)
