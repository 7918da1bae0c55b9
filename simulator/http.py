"""A minimal asyncio HTTP/1.1 server built on h11, one listening socket per device.

The simulator needs thousands of HTTP endpoints in one process, so this stays far lighter than
an ASGI stack. Each port gets one ``asyncio.Server`` and each connection one h11 state machine.
A plain ``async`` handler turns an :class:`HttpRequest` into an :class:`HttpResponse`.
Keep-alive is supported. Request heads and bodies are size-limited, and every read is bounded
by an idle timeout, so a silent client cannot pin a connection forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024
IDLE_TIMEOUT_SECONDS = 120.0
_READ_CHUNK = 65536


@dataclass(frozen=True)
class HttpRequest:
    """One request: method and target as sent, headers with lower-case names, full body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpResponse:
    """A complete response; ``body`` is sent as is with a ``Content-Length``."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str | None = "application/json"


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class HttpServer:
    """Serve one handler on one TCP port, optionally with TLS."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        server_header: str = "",
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._server_header = server_header
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        if self._server is None:
            raise RuntimeError("HTTP server not started; call start() first")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, ssl=self._ssl, limit=_READ_CHUNK
        )

    async def stop(self) -> None:
        """Stop accepting, close open connections and wait for their tasks."""
        if self._server is None:
            return
        self._server.close()
        self.drop_connections()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._connections, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    def drop_connections(self) -> None:
        """Close every open connection (keep-alive ones included), as a device reboot does."""
        for task in list(self._connections):
            task.cancel()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("HTTP connection failed")
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        while True:
            try:
                request = await self._read_request(connection, reader)
            except h11.RemoteProtocolError as error:
                if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(connection, writer, _bad_request(str(error), error.error_status_hint))
                return
            if request is None:
                return
            head_only = request.method == "HEAD"
            if head_only:
                # HEAD gets the GET response headers without the body.
                request = dataclasses.replace(request, method="GET")
            response = await self._respond(request)
            await self._send(connection, writer, response, head_only=head_only)
            if connection.our_state is h11.MUST_CLOSE or connection.their_state is h11.MUST_CLOSE:
                return
            try:
                connection.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _respond(self, request: HttpRequest) -> HttpResponse:
        """Run the handler; a failure in it becomes a 500 instead of a dropped connection."""
        try:
            return await self._handler(request)
        except Exception:
            logger.exception("HTTP handler failed for %s %s", request.method, request.target.split("?")[0])
            body = b'{"error":500,"message":"Internal Server Error"}'
            return HttpResponse(500, body)

    async def _read_request(
        self, connection: h11.Connection, reader: asyncio.StreamReader
    ) -> HttpRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(_READ_CHUNK), IDLE_TIMEOUT_SECONDS)
                connection.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY_BYTES:
                    raise h11.RemoteProtocolError("request body too large", 413)
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return _request_from(head, bytes(body))
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None

    async def _send(
        self,
        connection: h11.Connection,
        writer: asyncio.StreamWriter,
        response: HttpResponse,
        *,
        head_only: bool = False,
    ) -> None:
        headers = [("content-length", str(len(response.body)))]
        if response.content_type:
            headers.append(("content-type", response.content_type))
        if self._server_header:
            headers.append(("server", self._server_header))
        headers.extend(response.headers)
        writer.write(connection.send(h11.Response(status_code=response.status, headers=headers)))
        if response.body and not head_only:
            writer.write(connection.send(h11.Data(data=response.body)))
        writer.write(connection.send(h11.EndOfMessage()))
        await writer.drain()


def _request_from(head: h11.Request, body: bytes) -> HttpRequest:
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in head.headers
    }
    return HttpRequest(
        method=head.method.decode("ascii", "replace"),
        target=head.target.decode("latin-1"),
        headers=headers,
        body=body,
    )


def _bad_request(reason: str, status: int) -> HttpResponse:
    return HttpResponse(status=status, body=reason.encode("utf-8", "replace"), content_type="text/plain")
