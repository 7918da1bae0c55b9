"""Liveness and readiness over HTTP for processes that serve no web application.

The worker has no FastAPI app, yet orchestrators probe ``/healthz`` and ``/readyz`` the same
way for every container. ``ProbeServer`` serves exactly those two GET requests from a tiny
asyncio server, so it adds no dependency and no framework to the worker:

    async with ProbeServer("0.0.0.0", 8081, ready=worker_is_polling):
        ...
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]

MAX_REQUEST_BYTES = 8192
READ_TIMEOUT_SECONDS = 5.0
READY_TIMEOUT_SECONDS = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


async def _always_ready() -> bool:
    return True


class ProbeServer:
    """HTTP server for ``GET /healthz`` (process alive) and ``GET /readyz`` (``ready()``)."""

    def __init__(self, host: str, port: int, ready: ReadinessCheck = _always_ready) -> None:
        self._host = host
        self._port = port
        self._ready = ready
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """Return the bound port, which differs from the requested one when that was 0."""
        if self._server is None:
            raise RuntimeError("ProbeServer is not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        """Bind and start serving; raises OSError when the port is taken."""
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, limit=MAX_REQUEST_BYTES
        )
        logger.info("probe server listening on %s:%d", self._host, self.port)

    async def stop(self) -> None:
        """Stop accepting connections and wait for the listener to close."""
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> ProbeServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._respond(reader)
            payload = json.dumps(body).encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # The prober disconnected, so no response can be sent.
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, object]]:
        try:
            head = await asyncio.wait_for(
                reader.readuntil(b"\r\n\r\n"), timeout=READ_TIMEOUT_SECONDS
            )
        except (TimeoutError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            return 400, {"error": "incomplete or oversized request"}

        request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(request_line) != 3:
            return 400, {"error": "malformed request line"}
        method, target, _version = request_line
        path = target.split("?", 1)[0]
        if path not in ("/healthz", "/readyz"):
            return 404, {"error": "unknown path; use /healthz or /readyz"}
        if method != "GET":
            return 405, {"error": "use GET"}
        if path == "/healthz":
            return 200, {"status": "ok"}
        return await self._readiness()

    async def _readiness(self) -> tuple[int, dict[str, object]]:
        try:
            ready = await asyncio.wait_for(self._ready(), timeout=READY_TIMEOUT_SECONDS)
        except TimeoutError:
            logger.warning("readiness check timed out after %.0f s", READY_TIMEOUT_SECONDS)
            return 503, {"ready": False, "error": "readiness check timed out"}
        except Exception:  # noqa: BLE001 - any failing check means not ready, and is logged
            logger.exception("readiness check failed")
            return 503, {"ready": False, "error": "readiness check failed"}
        return (200 if ready else 503), {"ready": bool(ready)}
