"""The RouterOS binary API (TCP 8728, API-SSL 8729) of one simulated device.

Sentences are words with 1-4 byte length prefixes and a zero-length word at the end. A
first length byte of 0xF0 or more is rejected and the connection closed, like clients do.
Replies carry the request's ``.tag``, and several commands may run at once on one
connection. ``/cancel`` interrupts them in RouterOS order. Writes are split inside length
prefixes and inside words, so a client that assumes whole reads fails here as it would on
a real network.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import secrets
import socket
import ssl
from dataclasses import dataclass

from simulator.executor import (
    CATEGORY_INTERRUPTED,
    Result,
    Session,
    Trap,
    execute,
    unknown_command,
    visible_rows,
)
from simulator.faults import Faults
from simulator.schema import INTERFACE_MENUS
from simulator.state import DeviceState, UserInfo

logger = logging.getLogger(__name__)

LOGIN_FAILED = "invalid user name or password (6)"
OLD_LOGIN_FAILED = "cannot log in"
QUIT_MESSAGE = "session terminated on request"


class ProtocolViolation(Exception):
    """The peer sent bytes that are not a valid API sentence."""


@dataclass(frozen=True)
class ApiOptions:
    """Wire behaviour of the API server.

    Attributes:
        fragment_writes: Split every reply inside length prefixes and words.
        max_write_chunk: Largest single write, in bytes, when fragmenting.
        prelogin_max_sentences: Sentences a client may send before logging in.
        prelogin_max_word: Largest word, in bytes, accepted before login.
        max_word: Largest word accepted after login (4-byte prefixes allow 256 MiB).
        dead_value: Value of ``.dead`` in ``listen`` replies. The vendor manual shows
            ``yes``; a transcript from a real device shows ``true``.
    """

    fragment_writes: bool = True
    max_write_chunk: int = 65536
    # NOTE: RouterOS documents a pre-login limit without numbers; these are guesses.
    prelogin_max_sentences: int = 8
    prelogin_max_word: int = 16384
    max_word: int = 0x10000000 - 1
    dead_value: str = "yes"


def encode_length(length: int) -> bytes:
    """Encode a word length with the 1-4 byte API prefix."""
    if length < 0x80:
        return length.to_bytes(1, "big")
    if length < 0x4000:
        return (length | 0x8000).to_bytes(2, "big")
    if length < 0x200000:
        return (length | 0xC00000).to_bytes(3, "big")
    if length < 0x10000000:
        return (length | 0xE0000000).to_bytes(4, "big")
    raise ValueError(f"word of {length} bytes is longer than the API allows (0x0FFFFFFF)")


def encode_sentence(words: list[str]) -> list[bytes]:
    """Encode words (raw bytes kept via ``surrogateescape``) as prefix/body pieces + end byte."""
    pieces: list[bytes] = []
    for word in words:
        data = word.encode("utf-8", "surrogateescape")
        pieces.append(encode_length(len(data)))
        pieces.append(data)
    pieces.append(b"\x00")
    return pieces


async def read_length(reader: asyncio.StreamReader) -> int:
    """Read one length prefix; raise :class:`ProtocolViolation` for 0xF0 and above."""
    first = (await reader.readexactly(1))[0]
    if first < 0x80:
        return first
    if first < 0xC0:
        extra, mask = 1, 0x8000
    elif first < 0xE0:
        extra, mask = 2, 0xC00000
    elif first < 0xF0:
        extra, mask = 3, 0xE0000000
    else:
        raise ProtocolViolation(f"control byte 0x{first:02X} in length prefix")
    rest = await reader.readexactly(extra)
    return int.from_bytes(bytes([first]) + rest, "big") ^ mask


def split_word(word: str) -> tuple[str, str]:
    """Split ``=name=value`` at its first two ``=`` into name and value (which may contain ``=``).

    A word with a single ``=`` (``=flag``) is a name with an empty value.
    """
    name, _, value = word[1:].partition("=")
    return name, value


class ApiServer:
    """Serve the binary API of one device on one port, plain or TLS."""

    def __init__(
        self,
        state: DeviceState,
        *,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        options: ApiOptions | None = None,
    ) -> None:
        self.state = state
        self.faults = faults if faults is not None else Faults()
        self.options = options or ApiOptions()
        self._host = host
        self._port = port
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._connections: set[ApiConnection] = set()
        state.add_reboot_listener(self.drop_connections)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("API server not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(self._accept, self._host, self._port, ssl=self._tls)

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        self.state.remove_reboot_listener(self.drop_connections)
        if self._server is not None:
            self._server.close()
        self.drop_connections()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    def drop_connections(self) -> None:
        """Abort every open connection, as a reboot does."""
        for connection in list(self._connections):
            connection.abort()

    def _service_admits(self, peer: str | None) -> bool:
        """Apply ``/ip/service``: a disabled service or an ``address`` list without the peer drops it."""
        table = self.state.table("/ip/service")
        if table is None:
            return True
        service = table.find("api-ssl" if self._tls else "api")
        if service is None:
            return True
        if service.get("disabled") in ("true", "yes"):
            return False
        allowed = [a for a in (service.get("address") or "").split(",") if a]
        if not allowed or peer is None:
            return True
        try:
            address = ipaddress.ip_address(peer)
            return any(address in ipaddress.ip_network(a, strict=False) for a in allowed)
        except ValueError:
            return True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not self._service_admits(peer[0] if peer else None):
            # RouterOS stops serving a disabled service and drops peers outside its address list.
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = ApiConnection(self, reader, writer)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)


class ApiConnection:
    """One client connection: reads sentences, runs commands, writes tagged replies."""

    def __init__(self, server: ApiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.session: Session | None = None
        self.sent = 0
        self.closed = False
        self._write_lock = asyncio.Lock()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._untagged: set[asyncio.Task[None]] = set()
        # Tasks whose replies are already being written; /cancel leaves them to finish.
        self._finishing: set[asyncio.Task[None]] = set()
        self._prelogin_sentences = 0
        self._challenge: bytes | None = None

    @property
    def state(self) -> DeviceState:
        return self.server.state

    @property
    def faults(self) -> Faults:
        return self.server.faults

    def abort(self) -> None:
        """Close the socket at once, without a goodbye sentence."""
        self.closed = True
        transport = self.writer.transport
        if transport is not None and not transport.is_closing():
            transport.abort()

    async def run(self) -> None:
        """Serve until the client leaves, breaks the protocol or a fault drops it."""
        try:
            if self.faults.hang:
                await self._swallow()
                return
            while not self.closed:
                words = await self._read_sentence()
                if words:
                    await self._handle(words)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolViolation, ssl.SSLError) as error:
            logger.debug("api connection closed: %s", type(error).__name__)
        except Exception:
            logger.exception("api connection failed inside the simulator")
        finally:
            for task in [*self._running.values(), *self._untagged]:
                task.cancel()
            self.abort()

    async def _swallow(self) -> None:
        while await self.reader.read(65536):
            pass

    async def _read_sentence(self) -> list[str]:
        words: list[str] = []
        while True:
            length = await read_length(self.reader)
            if length == 0:
                return words
            limit = self.server.options.max_word if self.session else self.server.options.prelogin_max_word
            if length > limit:
                raise ProtocolViolation(f"word of {length} bytes exceeds {limit}")
            data = await self.reader.readexactly(length)
            words.append(data.decode("utf-8", "surrogateescape"))

    # -- writing -------------------------------------------------------------------------

    async def send(self, *words: str, tag: str | None = None) -> None:
        """Write one reply sentence, adding ``.tag`` when the request had a non-empty tag."""
        sentence = [*words, f".tag={tag}"] if tag else list(words)
        async with self._write_lock:
            if self.closed:
                return
            limit = self.faults.drop_after_sentences
            if limit is not None and self.sent >= limit:
                self.abort()
                return
            try:
                await self._write_pieces(encode_sentence(sentence))
            except (ConnectionError, OSError) as error:
                # The client went away mid-reply; the read loop notices and cleans up.
                logger.debug("api write failed: %s", type(error).__name__)
                self.abort()
                return
            self.sent += 1

    async def _write_pieces(self, pieces: list[bytes]) -> None:
        options = self.server.options
        if not options.fragment_writes:
            self.writer.write(b"".join(pieces))
            await self.writer.drain()
            return
        for chunk in _fragments(pieces, options.max_write_chunk):
            self.writer.write(chunk)
            await self.writer.drain()

    async def send_result(self, result: Result, tag: str | None) -> None:
        """Render an executor result as ``!re``/``!trap``/``!empty``/``!done`` sentences."""
        for row in result.rows:
            await self.send("!re", *(f"={name}={value}" for name, value in row.items()), tag=tag)
        for trap in result.traps:
            await self.send("!trap", *_trap_words(trap), tag=tag)
        if result.empty and not result.traps and self.state.version_at_least(7, 18):
            await self.send("!empty", tag=tag)
        await self.send("!done", *(f"={name}={value}" for name, value in result.done.items()), tag=tag)

    # -- reading commands ----------------------------------------------------------------

    async def _handle(self, words: list[str]) -> None:
        command, attrs, api_attrs, queries = _parse_sentence(words)
        tag = api_attrs.get("tag") or None
        if command == "/quit":
            await self.send("!fatal", QUIT_MESSAGE)
            self.abort()
            return
        if self.session is None:
            await self._handle_prelogin(command, attrs, tag)
            return
        if command == "/login":
            await self.send("!done", tag=tag)
            return
        if command == "/cancel":
            await self._cancel(attrs.get("tag"), tag)
            return
        task = asyncio.create_task(self._run_command(command, attrs, api_attrs, queries, tag))
        if tag:
            self._running[tag] = task
        else:
            self._untagged.add(task)
        task.add_done_callback(lambda done: self._forget(tag, done))

    def _forget(self, tag: str | None, task: asyncio.Task[None]) -> None:
        if tag and self._running.get(tag) is task:
            del self._running[tag]
        self._untagged.discard(task)
        self._finishing.discard(task)

    async def _handle_prelogin(self, command: str, attrs: dict[str, str], tag: str | None) -> None:
        self._prelogin_sentences += 1
        if self._prelogin_sentences > self.server.options.prelogin_max_sentences:
            self.abort()
            return
        if command != "/login":
            await self.send("!trap", "=message=not logged in", tag=tag)
            await self.send("!done", tag=tag)
            return
        await asyncio.sleep(self.faults.reply_delay())
        user, failure, challenge = self._login(attrs)
        if challenge is not None:
            await self.send("!done", f"=ret={challenge}", tag=tag)
            return
        if user is None:
            await self.send("!trap", f"=message={failure}", tag=tag)
            await self.send("!done", tag=tag)
            return
        self.session = Session(state=self.state, user=user, transport="api", faults=self.faults)
        await self.send("!done", tag=tag)

    def _login(self, attrs: dict[str, str]) -> tuple[UserInfo | None, str, str | None]:
        """Check one /login sentence; return the user, the failure text, or a new challenge.

        RouterOS 6.43 added the plain login and 6.45.1 removed the MD5 challenge login.
        """
        challenge_allowed = not self.state.version_at_least(6, 45, 1)
        plain_allowed = self.state.version_at_least(6, 43)
        name = attrs.get("name", "")
        if "response" in attrs:
            if not challenge_allowed or self._challenge is None:
                return None, OLD_LOGIN_FAILED, None
            user = self._check_response(name, attrs["response"], self._challenge)
            self._challenge = None
            return user, OLD_LOGIN_FAILED, None
        if not name or not plain_allowed:
            if challenge_allowed:
                self._challenge = secrets.token_bytes(16)
                return None, "", self._challenge.hex()
            return None, LOGIN_FAILED, None
        user = None
        if not self.faults.refuse_logins:
            user = self.state.authenticate(name, attrs.get("password", ""))
        if user is not None and "api" not in user.policies:
            user = None
        return user, LOGIN_FAILED, None

    def _check_response(self, name: str, response: str, challenge: bytes) -> UserInfo | None:
        password = self.state.passwords.get(name)
        if password is None or self.faults.refuse_logins:
            return None
        digest = hashlib.md5(b"\x00" + password.encode() + challenge, usedforsecurity=False).hexdigest()
        if not secrets.compare_digest(f"00{digest}", response):
            return None
        user = self.state.authenticate(name, password)
        return user if user is not None and "api" in user.policies else None

    async def _cancel(self, target: str | None, tag: str | None) -> None:
        victims: list[tuple[str | None, asyncio.Task[None]]] = [
            (name, task) for name, task in self._running.items() if target is None or name == target
        ]
        if target is None:
            victims += [(None, task) for task in self._untagged]
        victims = [(name, task) for name, task in victims if task not in self._finishing]
        for name, task in victims:
            task.cancel()
            await self.send("!trap", f"=category={CATEGORY_INTERRUPTED}", "=message=interrupted", tag=name)
        await self.send("!done", tag=tag)
        for name, _ in victims:
            await self.send("!done", tag=name)

    async def _run_command(
        self, command: str, attrs: dict[str, str], api_attrs: dict[str, str], queries: list[str], tag: str | None
    ) -> None:
        assert self.session is not None
        if self.faults.hang:
            await asyncio.Event().wait()
        delay = self.faults.reply_delay()
        if delay:
            await asyncio.sleep(delay)
        if "proplist" in api_attrs and ".proplist" not in attrs:
            attrs[".proplist"] = api_attrs["proplist"]
        path, _, verb = command.rpartition("/")
        if verb == "listen":
            await self._listen(path, tag)
            return
        result = execute(self.session, command, attrs, queries, api_attrs)
        current = asyncio.current_task()
        if current is not None:
            self._finishing.add(current)
        await asyncio.shield(self._finish(result, tag))

    async def _finish(self, result: Result, tag: str | None) -> None:
        await self.send_result(result, tag)
        if result.after_reply is not None:
            result.after_reply()

    async def _listen(self, path: str, tag: str | None) -> None:
        """Stream a ``!re`` per change of ``path`` until cancelled; never sends ``!done``."""
        if not self.state.has_menu(path):
            error = unknown_command(self.state, f"{path}/listen")
            await self.send_result(Result(traps=error.traps), tag)
            return
        queue: asyncio.Queue[tuple[str, dict[str, str], bool]] = asyncio.Queue()
        watched = set(INTERFACE_MENUS) if path == "/interface" else {path}

        def on_change(changed: str, item: dict[str, str], dead: bool) -> None:
            if changed in watched:
                queue.put_nowait((changed, item, dead))

        self.state.add_listener(on_change)
        try:
            while True:
                changed, item, dead = await queue.get()
                # Shielded so that /cancel never cuts a sentence in half.
                words = _listen_words(self.state, path, item, dead, self.server.options.dead_value)
                await asyncio.shield(self.send("!re", *words, tag=tag))
        finally:
            self.state.remove_listener(on_change)


def _listen_words(state: DeviceState, path: str, item: dict[str, str], dead: bool, dead_value: str) -> list[str]:
    if dead:
        return [f"=.id={item.get('.id', '')}", f"=.dead={dead_value}"]
    rows = [row for row in visible_rows(state, path) if row.get(".id") == item.get(".id")]
    row = rows[0] if rows else item
    return [f"={name}={value}" for name, value in row.items()]


def _trap_words(trap: Trap) -> list[str]:
    words = [f"=category={trap.category}"] if trap.category is not None else []
    return [*words, f"=message={trap.message}"]


def _parse_sentence(words: list[str]) -> tuple[str, dict[str, str], dict[str, str], list[str]]:
    command = words[0]
    attrs: dict[str, str] = {}
    api_attrs: dict[str, str] = {}
    queries: list[str] = []
    for word in words[1:]:
        if word.startswith("="):
            name, value = split_word(word)
            attrs[name] = value
        elif word.startswith("."):
            name, _, value = word[1:].partition("=")
            api_attrs[name] = value
        elif word.startswith("?"):
            queries.append(word)
    return command, attrs, api_attrs, queries


def _fragments(pieces: list[bytes], max_chunk: int) -> list[bytes]:
    """Cut the sentence after the first byte of every multi-byte prefix and mid-word."""
    cuts: list[bytes] = []
    current = bytearray()
    for index, piece in enumerate(pieces):
        is_prefix = index % 2 == 0 and index != len(pieces) - 1
        if is_prefix and len(piece) > 1:
            current += piece[:1]
            cuts.append(bytes(current))
            current = bytearray(piece[1:])
            continue
        if not is_prefix and len(piece) > 1:
            middle = len(piece) // 2
            current += piece[:middle]
            cuts.append(bytes(current))
            current = bytearray(piece[middle:])
            continue
        current += piece
    cuts.append(bytes(current))
    return [chunk[start : start + max_chunk] for chunk in cuts if chunk for start in range(0, len(chunk), max_chunk)]

