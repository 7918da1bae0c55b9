"""A real OpenID provider (``oidc-provider-mock``) and an in-process api for auth tests.

The provider runs on 127.0.0.1 in a thread and issues tokens through the authorization code
grant, as a browser login would. Two test-only routes are added to its Flask app: one signs
arbitrary claims with the provider's own key (for expired, not-yet-valid and wrong-audience
tokens that the provider would never issue by itself), one rotates that key.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import flask
import httpx
import oidc_provider_mock
import uvicorn
import werkzeug.serving
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import RSAKey

from api.app import create_app
from storage.migrate import upgrade
from tikflow.settings import Settings

CLIENT_ID = "tikflow"
CLIENT_SECRET = "test-client-secret"
REDIRECT_URI = "http://127.0.0.1/callback"


class MockIdP:
    """``oidc-provider-mock`` on a free loopback port, started and stopped by the test."""

    def __init__(self) -> None:
        self.app = oidc_provider_mock.app()
        self._add_test_routes(self.app)
        self._server: werkzeug.serving.BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MockIdP:
        server = werkzeug.serving.make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = server.server_port
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None

    def token_for(self, subject: str, claims: dict[str, Any]) -> str:
        """Log ``subject`` in through the authorization code grant and return its ID token."""
        with httpx.Client(base_url=self.issuer, timeout=10) as http:
            response = http.put(f"/users/{quote(subject)}", json=claims)
            assert response.status_code == 204, response.text
            response = http.post("/oauth2/authorize", data={"sub": subject}, params={
                "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
                "scope": "openid"})
            assert response.status_code == 302, response.text
            code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
            response = http.post("/oauth2/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
            assert response.status_code == 200, response.text
            return response.json()["id_token"]

    def sign(self, claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        """Return ``claims`` signed by the provider's current key (RS256)."""
        with httpx.Client(base_url=self.issuer, timeout=10) as http:
            response = http.post("/test/sign", json={"claims": claims, "header": header or {}})
            assert response.status_code == 200, response.text
            return response.text

    def rotate_key(self) -> None:
        """Replace the provider's signing key; the JWKS then lists only the new key."""
        with httpx.Client(base_url=self.issuer, timeout=10) as http:
            assert http.post("/test/rotate").status_code == 204

    @staticmethod
    def _add_test_routes(app: flask.Flask) -> None:
        def storage() -> Any:
            return flask.g.oidc_provider_mock_storage

        @app.post("/test/sign")
        def sign() -> str:
            body = flask.request.get_json()
            key = RSAKey.import_key(storage().jwk.as_dict(is_private=True))
            return jwt.encode({"alg": "RS256", **body["header"]}, body["claims"], key)

        @app.post("/test/rotate")
        def rotate() -> tuple[str, int]:
            from authlib import jose

            storage().jwk = jose.RSAKey.generate_key(is_private=True)
            return "", 204


@dataclass
class RunningApi:
    app: FastAPI
    url: str
    settings: Settings


@asynccontextmanager
async def running_api(settings_for: Any) -> AsyncIterator[RunningApi]:
    """Run ``create_app`` under uvicorn on a free loopback port; ``settings_for(port)`` builds
    the settings once the port is known, so the api's public URL is right."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings: Settings = settings_for(port)
    await asyncio.to_thread(upgrade, settings.database.url)
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(wait_until_started(server, task), timeout=20)
        yield RunningApi(app=app, url=f"http://127.0.0.1:{port}", settings=settings)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=20)
        sock.close()


async def wait_until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Return once uvicorn listens; raise if its task ended first. Bound it with wait_for."""
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.02)
