"""`tikflow login` flows, the token file, refresh, and the `tikflow mcp-stdio` bridge."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from mcp import Client, StdioServerParameters, stdio_client
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from storage.models import AuditEvent
from tests.support.oidc import (
    CLIENT_ID,
    CLIENT_SECRET,
    MockIdP,
    RunningApi,
    running_api,
    wait_until_started,
)
from tikflow.login import (
    LoginError,
    OAuthClient,
    StoredToken,
    fresh_token,
    load_token,
    save_token,
    token_from_response,
)
from tikflow.settings import Settings


@pytest.fixture(scope="module")
def idp() -> Any:
    provider = MockIdP().start()
    httpx.put(f"{provider.issuer}/users/alice", json={"groups": ["tikflow-reader"]})
    yield provider
    provider.stop()


def _client(idp: MockIdP) -> OAuthClient:
    return OAuthClient(idp.issuer, CLIENT_ID, client_secret=CLIENT_SECRET)


def _browser_as(subject: str, *, tamper_state: bool = False) -> Any:
    """Return an ``open_url`` that logs ``subject`` in, as a user in a browser would."""

    async def open_url(url: str) -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(url, data={"sub": subject})
            assert response.status_code == 302, response.text
            location = response.headers["location"]
            if tamper_state:
                location = location.replace("state=", "state=x")
            await http.get(location)

    return open_url


async def test_oidc_login_browser_pkce(idp: MockIdP, tmp_path: Path) -> None:
    """The browser login returns tokens for the user and saves them readable by the user only."""
    token = await _client(idp).login_with_browser(_browser_as("alice"), wait_seconds=10)
    assert token.issuer == idp.issuer
    assert token.refresh_token
    # The provider's access tokens are opaque, so the ID token is what tikflow receives.
    assert token.use_id_token
    assert token.bearer == token.id_token
    assert token.expires_at is not None and token.expires_at > time.time()

    path = save_token(token, tmp_path / "cfg" / "tikflow" / "token.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_token(path) == token


async def test_oidc_login_rejects_wrong_state(idp: MockIdP) -> None:
    """A callback whose state differs from the request is refused."""
    with pytest.raises(LoginError, match="wrong state"):
        await _client(idp).login_with_browser(_browser_as("alice", tamper_state=True), wait_seconds=10)


async def test_oidc_login_times_out(idp: MockIdP) -> None:
    """Without a browser callback, the login stops after the timeout and names the alternative."""

    async def ignore(url: str) -> None:
        return None

    with pytest.raises(LoginError, match="--device"):
        await _client(idp).login_with_browser(ignore, wait_seconds=0.2)


async def test_oidc_login_device_needs_support(idp: MockIdP) -> None:
    """The device grant fails clearly when the provider does not offer it."""
    with pytest.raises(LoginError, match="does not offer the device authorization grant"):
        await _client(idp).login_with_device_code(lambda url, code: None)


async def test_oidc_login_bad_issuer() -> None:
    """An issuer URL without a discovery document gives an error naming --issuer."""
    with pytest.raises(LoginError, match="--issuer"):
        await OAuthClient("http://127.0.0.1:9", CLIENT_ID).discovery()


async def test_oidc_refresh_when_expiring(idp: MockIdP, tmp_path: Path) -> None:
    """An expiring stored token is refreshed through the provider and saved."""
    token = await _client(idp).login_with_browser(_browser_as("alice"), wait_seconds=10)
    path = save_token(replace(token, expires_at=time.time() + 5), tmp_path / "token.json")

    refreshed = await fresh_token(_client(idp), path)
    assert refreshed.access_token != token.access_token
    assert refreshed.expires_at is not None and refreshed.expires_at > time.time() + 600
    assert refreshed.use_id_token
    assert load_token(path) == refreshed


async def test_oidc_refresh_failure_says_login(idp: MockIdP, tmp_path: Path) -> None:
    """A refresh token the provider does not recognise leads to 'run tikflow login'."""
    token = StoredToken(issuer=idp.issuer, client_id=CLIENT_ID, token_endpoint="",
                        access_token="a", expires_at=time.time() - 10, refresh_token="unknown")
    path = save_token(token, tmp_path / "token.json")
    with pytest.raises(LoginError, match="tikflow login"):
        await fresh_token(_client(idp), path)


def test_oidc_token_file_errors(tmp_path: Path) -> None:
    """Missing or corrupt token files give an error telling the user to log in."""
    with pytest.raises(LoginError, match="run `tikflow login` first"):
        load_token(tmp_path / "missing.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_bytes(b"\xff{not json")
    with pytest.raises(LoginError, match="unreadable"):
        load_token(corrupt)


def test_oidc_token_prefers_jwt_access_token() -> None:
    """A JWT access token is sent as is; an opaque one falls back to the ID token."""
    common = {"issuer": "i", "client_id": "c", "token_endpoint": "t"}
    jwt_like = token_from_response({"access_token": "a.b.c", "id_token": "x.y.z"}, **common)
    assert jwt_like.bearer == "a.b.c"
    opaque = token_from_response({"access_token": "opaque", "id_token": "x.y.z"}, **common)
    assert opaque.bearer == "x.y.z"
    with pytest.raises(LoginError, match="no access_token"):
        token_from_response({"id_token": "x.y.z"}, **common)


@pytest.fixture
async def api(idp: MockIdP, tmp_path: Path) -> AsyncIterator[RunningApi]:
    def build(port: int) -> Settings:
        return Settings(env="lab", var_dir=tmp_path,
                        database={"url": f"sqlite+aiosqlite:///{tmp_path}/tikflow.db"},
                        api={"host": "127.0.0.1", "port": port},
                        oidc={"issuer": idp.issuer, "audience": CLIENT_ID})

    async with running_api(build) as running:
        yield running


async def test_oidc_mcp_stdio_bridge(idp: MockIdP, api: RunningApi, tmp_path: Path) -> None:
    """A stdio MCP client reaches the remote api through the bridge, which refreshes the token."""
    token = await _client(idp).login_with_browser(_browser_as("alice"), wait_seconds=10)
    config_home = tmp_path / "config"
    path = save_token(replace(token, expires_at=time.time() - 1), config_home / "tikflow" / "token.json")

    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(config_home),
           "TIKFLOW_ENV": "lab", "TIKFLOW_OIDC__CLIENT_SECRET": CLIENT_SECRET,
           "TIKFLOW_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/unused.db"}
    tikflow = str(Path(sys.executable).with_name("tikflow"))
    params = StdioServerParameters(command=tikflow, args=["mcp-stdio", "--url", f"{api.url}/mcp"],
                                   env=env)
    async with Client(stdio_client(params)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool("device.list.v1", {})

    assert "device.list.v1" in tools
    assert "plan.apply.v1" not in tools
    assert not result.is_error
    assert result.structured_content["items"] == []

    stored = json.loads(path.read_text())
    assert stored["access_token"] != token.access_token
    assert stored["expires_at"] > time.time()
    async with api.app.state.services.db.session() as session:
        events = (await session.scalars(select(AuditEvent).where(AuditEvent.action.startswith("tool:")))).all()
    assert [(e.actor, e.action) for e in events] == [("alice", "tool:device.list.v1")]


def test_oidc_mcp_stdio_without_login(tmp_path: Path) -> None:
    """Without a token file, mcp-stdio exits at once with a message saying to log in."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "TIKFLOW_ENV": "lab"}
    tikflow = str(Path(sys.executable).with_name("tikflow"))
    finished = subprocess.run([tikflow, "mcp-stdio", "--url", "http://127.0.0.1:9/mcp"], env=env,
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert finished.returncode == 2
    assert "run `tikflow login` first" in finished.stderr
    assert finished.stdout == ""


class DeviceGrantProvider:
    """A minimal device-grant authorization server whose token endpoint replies from a list."""

    def __init__(self, token_replies: list[tuple[int, dict[str, Any]]]) -> None:
        self.replies = list(token_replies)
        self.token_requests: list[dict[str, str]] = []
        self.url = ""

        async def discovery(request: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.url, "token_endpoint": f"{self.url}/token",
                                 "device_authorization_endpoint": f"{self.url}/device",
                                 "authorization_endpoint": f"{self.url}/authorize"})

        async def device(request: Request) -> JSONResponse:
            return JSONResponse({"device_code": "dev-code-1", "user_code": "ABCD-EFGH",
                                 "verification_uri": f"{self.url}/activate", "interval": 1,
                                 "expires_in": 600})

        async def token(request: Request) -> JSONResponse:
            self.token_requests.append(dict(await request.form()))
            status, body = self.replies.pop(0)
            return JSONResponse(body, status_code=status)

        self.app = Starlette(routes=[Route("/.well-known/openid-configuration", discovery),
                                     Route("/device", device, methods=["POST"]),
                                     Route("/token", token, methods=["POST"])])


@asynccontextmanager
async def serve_device_provider(provider: DeviceGrantProvider) -> AsyncIterator[None]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    provider.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(provider.app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(wait_until_started(server, task), timeout=20)
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=20)
        sock.close()


async def test_oidc_login_device_grant() -> None:
    """The device grant polls through pending and slow_down, slowing by 5 s, until tokens come."""
    provider = DeviceGrantProvider([
        (400, {"error": "authorization_pending"}),
        (400, {"error": "slow_down"}),
        (200, {"access_token": "h.p.s", "expires_in": 300, "refresh_token": "r1",
               "token_type": "Bearer"}),
    ])
    shown: list[tuple[str, str]] = []
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with serve_device_provider(provider):
        client = OAuthClient(provider.url, "tikflow-cli")
        token = await client.login_with_device_code(lambda url, code: shown.append((url, code)),
                                                    sleep=sleep)
    assert shown == [(f"{provider.url}/activate", "ABCD-EFGH")]
    assert sleeps == [1.0, 1.0, 6.0]
    assert token.bearer == "h.p.s"
    assert token.refresh_token == "r1"
    assert all(r["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code" for r in provider.token_requests)
    assert all(r["device_code"] == "dev-code-1" for r in provider.token_requests)


async def test_oidc_login_device_grant_denied() -> None:
    """A user who denies the device login gets an error naming the reason."""
    provider = DeviceGrantProvider([(400, {"error": "access_denied"})])

    async def sleep(seconds: float) -> None:
        return None

    async with serve_device_provider(provider):
        with pytest.raises(LoginError, match="access_denied"):
            await OAuthClient(provider.url, "tikflow-cli").login_with_device_code(
                lambda url, code: None, sleep=sleep)
