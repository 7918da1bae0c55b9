"""The binary RouterOS API (TCP 8728) and API-SSL (8729) transport on librouteros' async API.

librouteros opens the socket, wraps TLS and drives the login hook; this module replaces its
sentence reader so replies stay raw strings. The stock reader casts ``yes``/``true`` to
booleans and numbers to ints, drops ``!re`` sentences that carry no words, merges ``=ret=``
into the rows and decodes with ``errors="ignore"``, which would lose non-UTF-8 bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass, field
from functools import partial

import librouteros
import structlog
from librouteros.api import AsyncApi
from librouteros.exceptions import FatalError
from librouteros.protocol import AsyncApiProtocol, decode_length, determine_length, encode_length

from routeros.client import Row, export_via_file
from routeros.errors import (
    AuthenticationFailed,
    ConnectionLost,
    DeviceError,
    DeviceTimeout,
    InvalidValue,
    PermissionDenied,
    UnknownPath,
    classify_message,
    map_error,
)
from routeros.target import DeviceTarget, build_ssl_context, verify_peer_certificate
from routeros.values import check_property_name, decode_text, encode_text, normalize_path

logger = structlog.get_logger(__name__)


class _RawProtocol(AsyncApiProtocol):
    """Sentence reader and writer that keep every byte and never cast values."""

    async def writeSentence(self, cmd: str, *words: str) -> None:  # noqa: N802 (librouteros name)
        encoded = bytearray()
        for word in (cmd, *words):
            data = encode_text(word, self.encoding)
            encoded += encode_length(len(data)) + data
        encoded += b"\x00"
        await self.transport.write(bytes(encoded))

    async def readSentence(self) -> tuple[str, tuple[str, ...]]:  # noqa: N802
        while True:
            words: list[str] = []
            while (word := await self.readWord()) != "":
                words.append(word)
            # The API manual says empty sentences are to be ignored.
            if words:
                break
        if words[0] == "!fatal":
            # Close without waiting: a TLS shutdown handshake with a departing peer can stall.
            self.transport.writer.close()
            raise FatalError(words[1] if len(words) > 1 else "connection closed by device")
        return words[0], tuple(words[1:])

    async def readWord(self) -> str:  # noqa: N802
        first = await self.transport.read(1)
        if first == b"\x00":
            return ""
        prefix = first + await self.transport.read(determine_length(first))
        data = await self.transport.read(decode_length(prefix))
        return decode_text(data, self.encoding)


@dataclass
class _Reply:
    """All sentences the device sent for one command, up to and including ``!done``."""

    rows: list[Row] = field(default_factory=list)
    done: Row = field(default_factory=dict)
    traps: list[Row] = field(default_factory=list)


def _parse_words(words: tuple[str, ...]) -> Row:
    """Split ``=name=value`` and ``.tag=value`` words; values may contain ``=`` themselves."""
    attributes: Row = {}
    for word in words:
        if word.startswith("="):
            name, _, value = word[1:].partition("=")
            attributes[name] = value
        elif word.startswith("."):
            name, _, value = word.partition("=")
            attributes[name] = value
    return attributes


class _RawApi(AsyncApi):
    """librouteros ``AsyncApi`` whose protocol is ``_RawProtocol`` without a per-read timeout.

    Timeouts are applied per command by ``ApiClient`` instead, because a slow command (a big
    export) legitimately goes quiet for longer than the connect timeout.
    """

    def __init__(self, protocol: AsyncApiProtocol) -> None:
        super().__init__(_RawProtocol(protocol.transport, protocol.encoding, timeout=None))
        self._tag_counter = 0

    async def run(self, command: str, words: list[str]) -> _Reply:
        """Send one sentence and collect its reply sentences until ``!done``."""
        await self.protocol.writeSentence(command, *words)
        reply = _Reply()
        while True:
            reply_word, raw_words = await self.protocol.readSentence()
            attributes = _parse_words(raw_words)
            attributes.pop(".tag", None)
            if reply_word == "!re":
                reply.rows.append(attributes)
            elif reply_word == "!trap":
                reply.traps.append(attributes)
            elif reply_word == "!done":
                reply.done = attributes
                return reply
            # "!empty" (RouterOS 7.18+) announces that no rows follow; "!done" still comes.

    async def run_limited(self, command: str, words: list[str], limit: int) -> _Reply:
        """Run a tagged command and ``/cancel`` it once ``limit`` rows have arrived.

        Cancelling stops a device from streaming a large table the caller will not read.
        The connection is left in step: this returns only after the command's ``!done``
        and the ``/cancel``'s ``!done`` were both read.
        """
        self._tag_counter += 1
        tag = str(self._tag_counter)
        cancel_tag: str | None = None
        await self.protocol.writeSentence(command, *words, f".tag={tag}")
        reply = _Reply()
        finished: set[str] = set()
        while tag not in finished or (cancel_tag is not None and cancel_tag not in finished):
            reply_word, raw_words = await self.protocol.readSentence()
            attributes = _parse_words(raw_words)
            sentence_tag = attributes.pop(".tag", None)
            if reply_word == "!done" and sentence_tag in (tag, cancel_tag):
                finished.add(sentence_tag)
                if sentence_tag == tag:
                    reply.done = attributes
            elif sentence_tag != tag:
                continue  # a trap for the /cancel itself, such as an already finished tag
            elif reply_word == "!re" and len(reply.rows) < limit:
                reply.rows.append(attributes)
            elif reply_word == "!trap" and not (cancel_tag and attributes.get("category") == "2"):
                reply.traps.append(attributes)
            if len(reply.rows) >= limit and cancel_tag is None and tag not in finished:
                cancel_tag = f"{tag}-cancel"
                await self.protocol.writeSentence("/cancel", f"=tag={tag}", f".tag={cancel_tag}")
        return reply


async def _login(api: _RawApi, username: str, password: str, *, target: DeviceTarget) -> None:
    """Log in with the post-6.43 method, and with the MD5 challenge if an older device sends one.

    The pinned certificate is checked first, so the password never reaches an impostor.
    """
    if target.transport == "api-ssl":
        verify_peer_certificate(api.protocol.transport.writer.get_extra_info("ssl_object"), target)
    reply = await api.run("/login", [f"=name={username}", f"=password={password}"])
    _raise_for_login_traps(reply, target)
    challenge = reply.done.get("ret")
    if challenge:
        response = _challenge_response(challenge, password, target.encoding)
        reply = await api.run("/login", [f"=name={username}", f"=response={response}"])
        _raise_for_login_traps(reply, target)


def _raise_for_login_traps(reply: _Reply, target: DeviceTarget) -> None:
    """Raise PermissionDenied when the user lacks the api policy, else AuthenticationFailed."""
    if not reply.traps:
        return
    message = ", ".join(trap.get("message", "") for trap in reply.traps)
    if classify_message(message) is PermissionDenied:
        raise PermissionDenied(
            f"login to {target.describe()} rejected: {message}; give the user's group the "
            "api policy",
            device_message=message,
        )
    raise AuthenticationFailed(
        f"login to {target.describe()} rejected: {message}; check the user name and password",
        device_message=message,
    )


def _challenge_response(challenge: str, password: str, encoding: str) -> str:
    """Compute the MD5 challenge response of RouterOS before 6.43."""
    try:
        challenge_bytes = bytes.fromhex(challenge)
    except ValueError:
        raise AuthenticationFailed(
            f"device sent an invalid login challenge {challenge!r}"
        ) from None
    digest = hashlib.md5(
        b"\x00" + encode_text(password, encoding) + challenge_bytes, usedforsecurity=False
    )
    return "00" + digest.hexdigest()


class ApiClient:
    """``DeviceClient`` over the binary API or API-SSL."""

    def __init__(self, api: _RawApi, target: DeviceTarget) -> None:
        self.target = target
        self._api = api
        self._healthy = True
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, target: DeviceTarget) -> ApiClient:
        """Open a connection and log in.

        Raises:
            DeviceError: Connect, TLS verification or login failed.
        """
        ssl_context = build_ssl_context(target) if target.transport == "api-ssl" else None
        action = f"connect to {target.describe()}"
        try:
            api = await asyncio.wait_for(
                librouteros.async_connect(
                    target.host,
                    target.username,
                    target.password,
                    port=target.port,
                    timeout=target.connect_timeout,
                    encoding=target.encoding,
                    ssl_wrapper=ssl_context,
                    subclass=_RawApi,
                    login_method=partial(_login, target=target),
                ),
                timeout=target.connect_timeout,
            )
        except TimeoutError:
            raise DeviceTimeout(f"{action} timed out after {target.connect_timeout:g}s") from None
        except ssl.SSLError as exc:
            # Checked before ValueError, which SSLCertVerificationError also is.
            raise map_error(exc, action=action, secret=target.password) from None
        except ValueError as exc:
            raise InvalidValue(f"{action} failed: {exc}") from None
        except Exception as exc:
            raise map_error(exc, action=action, secret=target.password) from None
        assert isinstance(api, _RawApi)
        return cls(api, target)

    @property
    def healthy(self) -> bool:
        """False once the connection failed, timed out or was closed by the device."""
        return self._healthy and not self._api.protocol.transport.reader.at_eof()

    async def print(
        self,
        path: str,
        *,
        where: dict[str, str] | None = None,
        proplist: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Return the items of a menu, filtered on the device with query words."""
        words: list[str] = []
        if proplist:
            names = ",".join(check_property_name(name) for name in proplist)
            words.append(f"=.proplist={names}")
        for name, value in (where or {}).items():
            words.append(f"?={check_property_name(name)}={value}")
        if limit is not None and limit <= 0:
            return []
        return (await self._run(_menu(path, "print"), words, limit=limit)).rows

    async def get(self, path: str) -> Row:
        """Return the one row of a singleton menu, or ``{}`` if the device sends none."""
        rows = (await self._run(_menu(path, "print"), [])).rows
        return rows[0] if rows else {}

    async def add(self, path: str, values: dict[str, str]) -> str:
        """Add an item and return the ``.id`` from ``=ret=``."""
        reply = await self._run(_menu(path, "add"), _attribute_words(values))
        return reply.done.get("ret", "")

    async def set(self, path: str, item_id: str | None, values: dict[str, str]) -> None:
        """Change one item, or the singleton menu when ``item_id`` is None."""
        words = [f"=.id={item_id}"] if item_id is not None else []
        await self._run(_menu(path, "set"), words + _attribute_words(values))

    async def remove(self, path: str, item_ids: list[str]) -> None:
        """Remove all given items in one command."""
        if not item_ids:
            return
        await self._run(_menu(path, "remove"), [f"=.id={','.join(item_ids)}"])

    async def command(self, path: str, args: dict[str, str] | None = None) -> list[Row]:
        """Run a command; data sent with ``!done`` comes last as its own row."""
        reply = await self._run(_menu(path), _attribute_words(args or {}))
        return reply.rows + ([reply.done] if reply.done else [])

    async def export(self, *, terse: bool = True, show_sensitive: bool = False) -> str:
        """Export through a temporary file, since ``/export`` sends nothing to API callers."""
        return await export_via_file(self, terse=terse, show_sensitive=show_sensitive)

    async def close(self) -> None:
        """Close the socket without waiting longer than the connect timeout."""
        self._healthy = False
        try:
            await asyncio.wait_for(self._api.close(), self.target.connect_timeout)
        except Exception as exc:  # noqa: BLE001 (closing must not fail; the socket is gone either way)
            logger.debug("routeros_close_failed", device=self.target.describe(), error=repr(exc))

    async def _run(self, command: str, words: list[str], *, limit: int | None = None) -> _Reply:
        """Run one command under the command timeout and raise its traps as errors.

        With ``limit`` the command is cancelled on the device after that many rows.
        """
        async with self._lock:
            if not self.healthy:
                raise ConnectionLost(
                    f"{command} not sent: the connection to {self.target.describe()} failed "
                    "or was closed; open a new client"
                )
            reply = await self._run_unlocked(command, words, limit)
        if reply.traps:
            raise _trap_error(command, reply.traps, self.target)
        return reply

    async def _run_unlocked(self, command: str, words: list[str], limit: int | None) -> _Reply:
        if limit is None:
            running = self._api.run(command, words)
        else:
            running = self._api.run_limited(command, words, limit)
        try:
            return await asyncio.wait_for(running, timeout=self.target.command_timeout)
        except asyncio.CancelledError:
            # The reply may still arrive and would be read as the reply to the next command.
            self._healthy = False
            raise
        except ValueError as exc:
            if isinstance(exc, ssl.SSLError):
                await self._discard()
                raise map_error(exc, action=command, secret=self.target.password) from None
            # Raised by encode_text before anything was written, so the connection is fine.
            raise InvalidValue(f"{command} not sent: {exc}") from None
        except TimeoutError:
            await self._discard()
            raise DeviceTimeout(
                f"{command} on {self.target.describe()} timed out after "
                f"{self.target.command_timeout:g}s"
            ) from None
        except Exception as exc:
            await self._discard()
            raise map_error(
                exc, action=f"{command} on {self.target.describe()}", secret=self.target.password
            ) from None

    async def _discard(self) -> None:
        """Close a connection whose reply stream is no longer in step with our requests."""
        logger.warning("routeros_api_connection_discarded", device=self.target.describe())
        await self.close()


def _menu(path: str, command: str | None = None) -> str:
    try:
        menu = normalize_path(path)
    except ValueError as exc:
        raise UnknownPath(str(exc)) from None
    return f"{menu}/{command}" if command else menu


def _attribute_words(values: dict[str, str]) -> list[str]:
    try:
        return [f"={check_property_name(name)}={value}" for name, value in values.items()]
    except ValueError as exc:
        raise InvalidValue(str(exc)) from None


def _trap_error(command: str, traps: list[Row], target: DeviceTarget) -> DeviceError:
    """Build one error from all traps of a reply (an unknown path sends two)."""
    message = ", ".join(trap.get("message", "") for trap in traps)
    categories = [trap["category"] for trap in traps if trap.get("category", "").isdigit()]
    category = int(categories[0]) if categories else None
    return map_error(
        message,
        action=f"{command} on {target.describe()}",
        category=category,
        secret=target.password,
    )
