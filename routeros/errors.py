"""Typed errors for everything that can go wrong while talking to a RouterOS device.

Every transport (binary API, API-SSL, REST, SSH) raises only these classes, so callers such as
Temporal activities decide on retries from one attribute, ``retryable``, and never parse
transport-specific exceptions themselves.

Hierarchy::

    DeviceError                     base class, carries ``retryable`` and the device's message
    ├── DeviceUnreachable           retryable: TCP connect refused, DNS failure, no route
    ├── DeviceTimeout               retryable: connect, login or a command exceeded its timeout
    ├── ConnectionLost              retryable: the peer closed the connection or sent !fatal
    ├── ProtocolViolation           retryable: the reply was not valid API framing, JSON or CLI
    ├── AuthenticationFailed        wrong user name or password, or a rejected login
    ├── PermissionDenied            the user lacks a policy ("not enough permissions (9)")
    ├── TlsVerificationFailed       certificate or pinned fingerprint did not match
    │   └── HostKeyVerificationFailed   the SSH host key did not match the pinned key
    ├── InvalidValue                a property value was rejected (trap category 1)
    ├── UnknownParameter            the menu has no such property
    ├── UnknownPath                 no such menu or command
    ├── ItemNotFound                the .id or name does not exist in the menu
    ├── AlreadyExists               "failure: already have ..." and similar duplicates
    └── CommandFailed               any other trap or CLI failure

``map_error`` is the single place that turns librouteros, httpx, asyncssh and socket exceptions,
REST error bodies and CLI or trap texts into these classes. It keeps the device's own message and
removes the password from every text it builds.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterable
from typing import ClassVar

import asyncssh
import httpx
from librouteros import exceptions as lro


class DeviceError(Exception):
    """Failure while talking to a RouterOS device.

    Attributes:
        retryable: True when the same request may succeed later without any change, for
            example after a network fault. False when the request or the credentials must
            change first.
        device_message: The text the device sent (trap message, REST ``detail`` or CLI line),
            or None when the failure happened before the device replied.
        category: The API trap category when the device sent one.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        device_message: str | None = None,
        category: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.device_message = device_message
        self.category = category

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class DeviceUnreachable(DeviceError):
    """The device could not be reached at all (refused, no route, name not resolved)."""

    retryable = True


class DeviceTimeout(DeviceError):
    """Connecting, logging in or running a command took longer than its timeout."""

    retryable = True


class ConnectionLost(DeviceError):
    """The connection closed in the middle of a conversation (EOF, reset, ``!fatal``)."""

    retryable = True


class ProtocolViolation(DeviceError):
    """The device sent bytes that do not follow the protocol, so the connection is unusable."""

    retryable = True


class AuthenticationFailed(DeviceError):
    """The device rejected the user name or password."""


class PermissionDenied(DeviceError):
    """The user is logged in but its group lacks the policy the request needs."""


class TlsVerificationFailed(DeviceError):
    """The peer's identity did not match the configured CA, fingerprint or host key."""


class HostKeyVerificationFailed(TlsVerificationFailed):
    """The SSH server's host key did not match the pinned key."""


class InvalidValue(DeviceError):
    """The device rejected a property value (API trap category 1)."""


class UnknownParameter(DeviceError):
    """The menu has no property or argument of that name."""


class UnknownPath(DeviceError):
    """The menu or command does not exist on this device or RouterOS version."""


class ItemNotFound(DeviceError):
    """The referenced ``.id`` or name does not exist."""


class AlreadyExists(DeviceError):
    """An item with the same unique key already exists."""


class CommandFailed(DeviceError):
    """The device reported a failure that no more specific class describes."""


# Checked in order, so the more specific phrases come first. The texts are those RouterOS
# sends in API traps, REST ``detail`` fields and CLI output (v6 and v7).
_MESSAGE_PATTERNS: tuple[tuple[re.Pattern[str], type[DeviceError]], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), error_class)
    for pattern, error_class in (
        (r"invalid user name or password|cannot log in|login failure", AuthenticationFailed),
        (r"not enough permissions", PermissionDenied),
        (r"no such command|bad command name", UnknownPath),
        (r"unknown parameter|expected end of command", UnknownParameter),
        (r"no such item", ItemNotFound),
        (r"already have|already exists", AlreadyExists),
        (
            r"invalid value|input does not match any value|must be either|value of .* out of range|"
            r"missing value",
            InvalidValue,
        ),
        (r"^session closed$", DeviceTimeout),
    )
)

# API trap categories with a class of their own when the text matches nothing above.
_CATEGORY_CLASSES: dict[int, type[DeviceError]] = {1: InvalidValue}

_HTTP_STATUS_CLASSES: dict[int, type[DeviceError]] = {
    401: AuthenticationFailed,
    403: PermissionDenied,
    502: DeviceUnreachable,
    503: DeviceUnreachable,
    504: DeviceTimeout,
}


def classify_message(message: str, category: int | None = None) -> type[DeviceError]:
    """Return the error class for a device message such as a trap or CLI error line."""
    for pattern, error_class in _MESSAGE_PATTERNS:
        if pattern.search(message):
            return error_class
    if category is not None and category in _CATEGORY_CLASSES:
        return _CATEGORY_CLASSES[category]
    return CommandFailed


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every non-empty secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def map_error(
    failure: BaseException | str,
    *,
    action: str = "request",
    category: int | None = None,
    http_status: int | None = None,
    not_found: type[DeviceError] = UnknownPath,
    secret: str | None = None,
) -> DeviceError:
    """Convert a transport failure or a device message into a ``DeviceError``.

    Args:
        failure: An exception raised by librouteros, httpx, asyncssh, ``ssl`` or the socket
            layer, or a message text the device sent (trap, REST ``detail``, CLI line).
        action: A short description of what was attempted, such as ``"/ip/address/add"``.
            It starts the error message.
        category: The API trap category that came with a message, if any.
        http_status: The HTTP status of a REST reply, if the failure came from one.
        not_found: The class for an HTTP 404 without a device message. REST sends a bare 404
            both for a missing item and for a missing menu, and only the caller knows which
            one its URL named.
        secret: The password of the connection. It never appears in the result.

    Returns:
        The typed error; ``DeviceError`` instances pass through unchanged.
    """
    if isinstance(failure, DeviceError):
        return failure
    if isinstance(failure, str):
        return _from_message(failure, action, category, http_status, not_found, secret)
    return _from_exception(failure, action, secret)


def _from_message(
    message: str,
    action: str,
    category: int | None,
    http_status: int | None,
    not_found: type[DeviceError],
    secret: str | None,
) -> DeviceError:
    message = redact(message.replace("\r\n", ", ").strip(), [secret])
    error_class = classify_message(message, category)
    if error_class is CommandFailed and http_status is not None:
        if http_status == 404:
            error_class = not_found
        else:
            error_class = _HTTP_STATUS_CLASSES.get(http_status, CommandFailed)
    status = f" (HTTP {http_status})" if http_status is not None else ""
    text = f"{action} failed{status}: {message}" if message else f"{action} failed{status}"
    return error_class(text, device_message=message or None, category=category)


def _from_exception(exc: BaseException, action: str, secret: str | None) -> DeviceError:
    detail = redact(str(exc) or type(exc).__name__, [secret])
    if isinstance(exc, lro.TrapError):
        return _from_message(exc.message, action, exc.category, None, UnknownPath, secret)
    if isinstance(exc, lro.MultiTrapError):
        text = ", ".join(trap.message for trap in exc.traps)
        first_category = exc.traps[0].category if exc.traps else None
        return _from_message(text, action, first_category, None, UnknownPath, secret)
    error_class, reason = _exception_class(exc)
    return error_class(f"{action} failed: {reason}: {detail}")


# Exceptions that carry no device message, most specific first: the first matching row wins.
_EXCEPTION_CLASSES: tuple[tuple[tuple[type[BaseException], ...], type[DeviceError], str], ...] = (
    ((asyncssh.HostKeyNotVerifiable,), HostKeyVerificationFailed, "SSH host key not verified"),
    ((asyncssh.PermissionDenied,), AuthenticationFailed, "SSH login rejected"),
    (
        (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.ChannelOpenError),
        ConnectionLost,
        "SSH connection closed",
    ),
    ((ssl.SSLCertVerificationError,), TlsVerificationFailed, "TLS certificate not verified"),
    ((ssl.SSLError,), TlsVerificationFailed, "TLS handshake failed"),
    ((httpx.ConnectTimeout,), DeviceTimeout, "connect timed out"),
    ((httpx.TimeoutException, asyncio.TimeoutError, TimeoutError), DeviceTimeout, "timed out"),
    ((httpx.RemoteProtocolError,), ConnectionLost, "HTTP connection closed"),
    ((lro.FatalError,), ConnectionLost, "device sent !fatal"),
    (
        (lro.ConnectionClosed, ConnectionResetError, BrokenPipeError, EOFError),
        ConnectionLost,
        "connection closed",
    ),
    ((lro.ProtocolError, UnicodeError), ProtocolViolation, "malformed reply"),
    ((OSError,), DeviceUnreachable, "connect failed"),
)


def _exception_class(exc: BaseException) -> tuple[type[DeviceError], str]:
    """Pick the class and a short reason for an exception that carries no device message."""
    if isinstance(exc, httpx.ConnectError):
        return _connect_error_class(exc), "connect failed"
    if isinstance(exc, httpx.TransportError) and not isinstance(
        exc, httpx.TimeoutException | httpx.RemoteProtocolError
    ):
        return ConnectionLost, "HTTP transport failed"
    for exception_types, error_class, reason in _EXCEPTION_CLASSES:
        if isinstance(exc, exception_types):
            return error_class, reason
    return CommandFailed, "unexpected failure"


def _connect_error_class(exc: httpx.ConnectError) -> type[DeviceError]:
    """Tell a TLS failure during connect apart from an unreachable host."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return TlsVerificationFailed
        cause = cause.__cause__ or cause.__context__
    return DeviceUnreachable
