"""``tikflow mcp-stdio``: a stdio MCP server that forwards every message to a remote tikflow.

Desktop MCP clients that only start local stdio servers reach a remote tikflow this way. The
bridge does not interpret messages: JSON-RPC requests, responses and notifications pass
through unchanged in both directions. Each HTTP request carries the user's token from
``tikflow login``, refreshed shortly before it expires and once more on a 401.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import structlog
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server

from tikflow.login import LoginError, OAuthClient, fresh_token, load_token, save_token

log = structlog.get_logger(__name__)


class RefreshingBearer(httpx2.Auth):
    """httpx2 auth flow that sends the stored bearer token and refreshes it when needed."""

    def __init__(self, client_secret: str | None = None, path: Path | None = None) -> None:
        self.client_secret = client_secret
        self.path = path
        self._lock = anyio.Lock()

    def _client(self) -> OAuthClient:
        token = load_token(self.path)
        return OAuthClient(token.issuer, token.client_id, client_secret=self.client_secret)

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        async with self._lock:
            token = await fresh_token(self._client(), self.path)
        request.headers["Authorization"] = f"Bearer {token.bearer}"
        response = yield request
        if response.status_code != 401 or not token.refresh_token:
            return
        # The server rejected a token we thought valid (clock skew, revoked session): refresh once.
        async with self._lock:
            current = load_token(self.path)
            if current.bearer == token.bearer:
                current = await self._client().refresh(current)
                save_token(current, self.path)
        log.info("token refreshed after 401")
        request.headers["Authorization"] = f"Bearer {current.bearer}"
        yield request


async def run_bridge(url: str, auth: httpx2.Auth, *, stdin: Any = None, stdout: Any = None) -> None:
    """Forward MCP messages between this process's stdio and the server at ``url``."""
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with httpx2.AsyncClient(auth=auth, timeout=timeout) as http:
        async with streamable_http_client(url, http_client=http) as (remote_read, remote_write):
            async with stdio_server(stdin, stdout) as (local_read, local_write):
                async with anyio.create_task_group() as group:

                    async def upstream() -> None:
                        async for message in local_read:
                            if isinstance(message, Exception):
                                log.warning("invalid message from the local client", error=str(message))
                                continue
                            await remote_write.send(message)
                        # The local client closed stdin: the session is over.
                        group.cancel_scope.cancel()

                    async def downstream() -> None:
                        async for message in remote_read:
                            if isinstance(message, Exception):
                                log.warning("remote tikflow transport error", error=str(message))
                                continue
                            await local_write.send(message)

                    group.start_soon(upstream)
                    group.start_soon(downstream)


def check_login(path: Path | None = None) -> None:
    """Exit early with a clear message when there is no usable token file."""
    try:
        load_token(path)
    except LoginError as err:
        print(f"tikflow mcp-stdio: {err}", file=sys.stderr)
        raise SystemExit(2) from None
