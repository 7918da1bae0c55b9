"""The binary API transport against a scripted loopback server that sends exact bytes.

The simulator covers normal device behaviour; these tests pin wire cases that need precise
control: raw values, undecodable bytes, empty sentences, control bytes, ``!fatal``, the old
challenge login and the ``/cancel`` reply order.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from librouteros.protocol import encode_length

from routeros.errors import (
    AuthenticationFailed,
    ConnectionLost,
    InvalidValue,
    PermissionDenied,
    ProtocolViolation,
    UnknownPath,
)
from routeros.target import DeviceTarget
from routeros.transports.api import ApiClient

Handler = Callable[[list[str]], Awaitable[list[bytes]]]


def sentence(*words: str | bytes) -> bytes:
    """Encode one API sentence; bytes words are sent as they are."""
    out = bytearray()
    for word in words:
        data = word if isinstance(word, bytes) else word.encode()
        out += encode_length(len(data)) + data
    return bytes(out + b"\x00")


class ScriptedServer:
    """Loopback API server; logs every login and passes other requests to a handler."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[list[str]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (words := await _read_sentence(reader)) is not None:
                self.requests.append(words)
                for data in await self.handler(words):
                    writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _read_sentence(reader: asyncio.StreamReader) -> list[str] | None:
    words: list[str] = []
    while True:
        first = await reader.read(1)
        if not first:
            return None
        length = first[0]
        if length & 0x80:
            # Requests in these tests are short; two-byte lengths cover them.
            length = ((length & 0x3F) << 8) | (await reader.readexactly(1))[0]
        if length == 0:
            return words
        words.append((await reader.readexactly(length)).decode())


def plain_login(words: list[str]) -> list[bytes] | None:
    """Answer a login with !done, or return None for other commands."""
    return [sentence("!done")] if words[0] == "/login" else None


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[ApiClient]]]:
    """Start a scripted server with the given handler and return a logged-in client."""
    servers: list[ScriptedServer] = []
    clients: list[ApiClient] = []

    async def start(handler: Handler) -> ApiClient:
        server = ScriptedServer(handler)
        servers.append(server)
        port = await server.start()
        target = DeviceTarget(
            host="127.0.0.1",
            port=port,
            transport="api",
            username="admin",
            password="pw",
            connect_timeout=2,
            command_timeout=2,
        )
        client = await ApiClient.connect(target)
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
    for server in servers:
        await server.stop()


async def test_api_rows_stay_raw_strings(serve) -> None:
    """Values keep leading zeros, true/false, empty strings, '=' and CRLF unchanged."""

    async def handler(words: list[str]) -> list[bytes]:
        return plain_login(words) or [
            sentence(
                "!re",
                "=.id=*1",
                "=name=0000",
                "=disabled=true",
                "=comment=",
                "=note=a=b=c",
                "=multi=line1\r\nline2",
            ),
            sentence("!done"),
        ]

    client = await serve(handler)
    rows = await client.print("/interface")
    assert rows == [
        {
            ".id": "*1",
            "name": "0000",
            "disabled": "true",
            "comment": "",
            "note": "a=b=c",
            "multi": "line1\r\nline2",
        }
    ]


async def test_api_undecodable_bytes_become_escapes(serve) -> None:
    """A CP1251 value on a UTF-8 connection comes back as \\xHH text, not dropped."""

    async def handler(words: list[str]) -> list[bytes]:
        return plain_login(words) or [
            sentence("!re", b"=comment=\xcf\xf0\xe8 ok"),
            sentence("!done"),
        ]

    client = await serve(handler)
    assert await client.print("/ip/address") == [{"comment": "\\xcf\\xf0\\xe8 ok"}]


async def test_api_empty_rows_and_empty_sentences(serve) -> None:
    """Bare !re rows (proplist matched nothing) are kept and empty sentences are skipped."""

    async def handler(words: list[str]) -> list[bytes]:
        return plain_login(words) or [
            b"\x00",
            sentence("!re"),
            sentence("!re"),
            sentence("!done"),
        ]

    client = await serve(handler)
    assert await client.print("/ip/service", proplist=["comment"]) == [{}, {}]


async def test_api_empty_reply_word(serve) -> None:
    """!empty followed by !done is an empty result (RouterOS 7.18 and later)."""

    async def handler(words: list[str]) -> list[bytes]:
        return plain_login(words) or [sentence("!empty"), sentence("!done")]

    client = await serve(handler)
    assert await client.print("/interface/pptp-server") == []


async def test_api_two_traps_unknown_path(serve) -> None:
    """The two traps of an unknown path become one UnknownPath with both messages."""

    async def handler(words: list[str]) -> list[bytes]:
        return plain_login(words) or [
            sentence("!trap", "=category=0", "=message=no such command or directory (bogus)"),
            sentence("!trap", "=message=no such command prefix"),
            sentence("!done"),
        ]

    client = await serve(handler)
    with pytest.raises(UnknownPath) as failure:
        await client.print("/bogus")
    assert "no such command or directory (bogus)" in str(failure.value)
    assert "no such command prefix" in str(failure.value)
    assert failure.value.category == 0
    assert client.healthy is True


async def test_api_fatal_closes_client(serve) -> None:
    """!fatal raises ConnectionLost with the device's text and the client is unhealthy."""

    async def handler(words: list[str]) -> list[bytes]:
        return plain_login(words) or [sentence("!fatal", "session terminated on request")]

    client = await serve(handler)
    with pytest.raises(ConnectionLost, match="session terminated on request"):
        await client.print("/interface")
    assert client.healthy is False


async def test_api_control_byte_is_protocol_violation(serve) -> None:
    """A reserved length byte (0xF8) is a ProtocolViolation and ends the connection."""

    async def handler(words: list[str]) -> list[bytes]:
        return plain_login(words) or [b"\xf8\x00\x00\x00\x00"]

    client = await serve(handler)
    with pytest.raises(ProtocolViolation):
        await client.print("/interface")
    assert client.healthy is False


async def test_api_cancel_after_limit_reads_every_reply(serve) -> None:
    """With a limit the command is cancelled and the trap/done order leaves the stream in step."""

    async def handler(words: list[str]) -> list[bytes]:
        if words[0] == "/login":
            return [sentence("!done")]
        tag = next((word[5:] for word in words if word.startswith(".tag=")), None)
        if words[0] == "/ip/address/print":
            return [
                sentence("!re", f"=address=10.0.0.{index}", f".tag={tag}") for index in range(3)
            ]
        if words[0] == "/cancel":
            cancelled = next(word[5:] for word in words if word.startswith("=tag="))
            return [
                sentence("!trap", "=category=2", "=message=interrupted", f".tag={cancelled}"),
                sentence("!done", f".tag={tag}"),
                sentence("!done", f".tag={cancelled}"),
            ]
        return [sentence("!re", "=name=MikroTik"), sentence("!done")]

    client = await serve(handler)
    rows = await client.print("/ip/address", limit=2)
    assert rows == [{"address": "10.0.0.0"}, {"address": "10.0.0.1"}]
    assert await client.get("/system/identity") == {"name": "MikroTik"}


async def test_api_challenge_login_before_6_43() -> None:
    """A device that answers the login with a challenge gets the MD5 response."""
    challenge = "856780b7411eefd3abadee2058c149a3"

    async def handler(words: list[str]) -> list[bytes]:
        if words[0] == "/login" and not any(word.startswith("=response=") for word in words):
            return [sentence("!done", f"=ret={challenge}")]
        return [sentence("!done")]

    server = ScriptedServer(handler)
    port = await server.start()
    target = DeviceTarget(
        host="127.0.0.1", port=port, transport="api", username="admin", password="pw"
    )
    client = await asyncio.wait_for(ApiClient.connect(target), timeout=5)
    await client.close()
    await server.stop()
    expected = "00" + hashlib.md5(b"\x00pw" + bytes.fromhex(challenge)).hexdigest()
    assert server.requests[1] == ["/login", "=name=admin", f"=response={expected}"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("invalid user name or password (6)", AuthenticationFailed),
        ("not enough permissions (9)", PermissionDenied),
    ],
)
async def test_api_login_trap_classes(message: str, expected: type) -> None:
    """A login trap about policies is PermissionDenied; any other is AuthenticationFailed."""

    async def handler(words: list[str]) -> list[bytes]:
        return [sentence("!trap", f"=message={message}"), sentence("!done")]

    server = ScriptedServer(handler)
    port = await server.start()
    target = DeviceTarget(
        host="127.0.0.1", port=port, transport="api", username="admin", password="pw"
    )
    try:
        with pytest.raises(expected, match=re.escape(message)):
            await asyncio.wait_for(ApiClient.connect(target), timeout=5)
    finally:
        await server.stop()


async def test_api_unencodable_password_not_echoed() -> None:
    """A password the device encoding cannot carry fails without appearing in the error."""

    async def handler(words: list[str]) -> list[bytes]:
        return [sentence("!done")]

    server = ScriptedServer(handler)
    port = await server.start()
    target = DeviceTarget(
        host="127.0.0.1",
        port=port,
        transport="api",
        username="admin",
        password="pässwörd-☃",
        encoding="cp1252",
    )
    try:
        with pytest.raises(InvalidValue) as failure:
            await asyncio.wait_for(ApiClient.connect(target), timeout=5)
    finally:
        await server.stop()
    assert "pässwörd" not in str(failure.value)
    assert server.requests == []
