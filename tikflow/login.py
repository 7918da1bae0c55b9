"""A user's tokens from the identity provider: login flows, the token file and refresh.

``tikflow login`` uses the OAuth 2.0 authorization code grant with PKCE (RFC 7636) through the
browser and a loopback redirect (RFC 8252), or the device authorization grant (RFC 8628) when
there is no browser. Tokens are kept in ``$XDG_CONFIG_HOME/tikflow/token.json`` (by default
``~/.config/tikflow/token.json``), readable by the user only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

# Refresh this many seconds before the token expires, so a request never races the expiry.
REFRESH_MARGIN_SECONDS = 60
DEFAULT_SCOPE = "openid profile email offline_access"


class LoginError(Exception):
    """A login or refresh failed; the message states what to do next."""


@dataclass
class StoredToken:
    """The tokens of one login, as kept in the token file."""

    issuer: str
    client_id: str
    token_endpoint: str
    access_token: str
    expires_at: float | None = None
    refresh_token: str | None = None
    id_token: str | None = None
    use_id_token: bool = False

    @property
    def bearer(self) -> str:
        """Return the token sent to tikflow: the access token, or the ID token when the IdP
        issues opaque access tokens that tikflow cannot verify."""
        if self.use_id_token and self.id_token:
            return self.id_token
        return self.access_token

    def expires_soon(self, now: float | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now or time.time()) >= self.expires_at - REFRESH_MARGIN_SECONDS


def token_path() -> Path:
    """Return the token file of the current user."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tikflow" / "token.json"


def save_token(token: StoredToken, path: Path | None = None) -> Path:
    """Write ``token`` to the token file with mode 0600 (its folder 0700)."""
    path = path or token_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(asdict(token), handle, indent=2)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return path


def load_token(path: Path | None = None) -> StoredToken:
    """Read the token file; raise ``LoginError`` telling the user to log in when it is unusable."""
    path = path or token_path()
    try:
        data = json.loads(path.read_text())
        return StoredToken(**data)
    except FileNotFoundError:
        raise LoginError(f"no token at {path}; run `tikflow login` first") from None
    except (OSError, ValueError, TypeError) as err:
        raise LoginError(f"token file {path} is unreadable ({type(err).__name__}); "
                         "run `tikflow login` again") from None


def token_from_response(response: dict[str, Any], *, issuer: str, client_id: str,
                        token_endpoint: str, use_id_token: bool | None = None,
                        previous: StoredToken | None = None) -> StoredToken:
    """Build a ``StoredToken`` from a token endpoint response (RFC 6749 section 5.1)."""
    access_token = response.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise LoginError("the identity provider returned no access_token")
    expires_in = response.get("expires_in")
    id_token = response.get("id_token") or (previous.id_token if previous else None)
    if use_id_token is None:
        # An opaque access token (not a JWT) cannot be verified by tikflow; fall back to the
        # ID token, whose audience is this client.
        use_id_token = access_token.count(".") != 2 and bool(id_token)
    return StoredToken(
        issuer=issuer, client_id=client_id, token_endpoint=token_endpoint,
        access_token=access_token,
        expires_at=time.time() + float(expires_in) if isinstance(expires_in, int | float) else None,
        refresh_token=response.get("refresh_token") or (previous.refresh_token if previous else None),
        id_token=id_token, use_id_token=use_id_token,
    )


class OAuthClient:
    """The OAuth 2.0 client side of ``tikflow login`` for one issuer and client id."""

    def __init__(self, issuer: str, client_id: str, *, client_secret: str | None = None,
                 scope: str = DEFAULT_SCOPE, timeout: float = 10.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.timeout = timeout
        self._discovery: dict[str, Any] | None = None

    async def discovery(self) -> dict[str, Any]:
        """Return the issuer's OpenID discovery document."""
        if self._discovery is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                try:
                    response = await http.get(url)
                    response.raise_for_status()
                    self._discovery = response.json()
                except (httpx.HTTPError, ValueError) as err:
                    raise LoginError(f"cannot read the discovery document at {url}: {err}; "
                                     "check --issuer") from None
        return self._discovery

    async def login_with_browser(self, open_url: Callable[[str], Awaitable[None] | None], *,
                                 wait_seconds: float = 300.0) -> StoredToken:
        """Run the authorization code grant with PKCE through a loopback redirect."""
        discovery = await self.discovery()
        verifier = secrets.token_urlsafe(64)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(24)
        callback = _LoopbackCallback()
        await callback.start()
        try:
            redirect_uri = callback.redirect_uri
            query = urlencode({"response_type": "code", "client_id": self.client_id,
                               "redirect_uri": redirect_uri, "scope": self.scope, "state": state,
                               "code_challenge": challenge, "code_challenge_method": "S256",
                               "nonce": secrets.token_urlsafe(16)})
            opened = open_url(f"{discovery['authorization_endpoint']}?{query}")
            if opened is not None:
                await opened
            try:
                params = await asyncio.wait_for(callback.result, wait_seconds)
            except TimeoutError:
                raise LoginError(f"no login callback from the browser within {wait_seconds:.0f} s; run "
                                 "`tikflow login` again or use --device") from None
        finally:
            await callback.stop()
        if params.get("state") != state:
            raise LoginError("the login callback carried the wrong state; run `tikflow login` again")
        if "error" in params:
            raise LoginError(f"the identity provider rejected the login: {params['error']}")
        if "code" not in params:
            raise LoginError("the login callback carried no code; run `tikflow login` again")
        return await self._token_request({"grant_type": "authorization_code", "code": params["code"],
                                          "redirect_uri": redirect_uri, "code_verifier": verifier})

    async def login_with_device_code(self, show: Callable[[str, str], None], *,
                                     sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> StoredToken:
        """Run the device authorization grant; ``show(url, user_code)`` shows the user where to go."""
        discovery = await self.discovery()
        endpoint = discovery.get("device_authorization_endpoint")
        if not endpoint:
            raise LoginError(f"{self.issuer} does not offer the device authorization grant; "
                             "log in through the browser instead (omit --device)")
        grant = await self._post(endpoint, {"client_id": self.client_id, "scope": self.scope})
        show(grant.get("verification_uri_complete") or grant["verification_uri"], grant["user_code"])
        interval = float(grant.get("interval", 5))
        deadline = time.monotonic() + float(grant.get("expires_in", 600))
        while time.monotonic() < deadline:
            await sleep(interval)
            try:
                return await self._token_request({
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                    "device_code": grant["device_code"]})
            except _OAuthError as err:
                if err.code == "authorization_pending":
                    continue
                if err.code == "slow_down":
                    interval += 5
                    continue
                raise LoginError(f"device login failed: {err.code}; run `tikflow login` again") from None
        raise LoginError("the device code expired before the login finished; run `tikflow login` again")

    async def refresh(self, token: StoredToken) -> StoredToken:
        """Exchange the refresh token for new tokens."""
        if not token.refresh_token:
            raise LoginError("the token expired and there is no refresh token; run `tikflow login`")
        try:
            return await self._token_request({"grant_type": "refresh_token",
                                              "refresh_token": token.refresh_token},
                                             previous=token)
        except _OAuthError as err:
            raise LoginError(f"refreshing the token failed ({err.code}); run `tikflow login`") from None

    async def _token_request(self, data: dict[str, str], *,
                             previous: StoredToken | None = None) -> StoredToken:
        discovery = await self.discovery()
        endpoint = discovery["token_endpoint"]
        response = await self._post(endpoint, {"client_id": self.client_id, **data})
        return token_from_response(response, issuer=self.issuer, client_id=self.client_id,
                                   token_endpoint=endpoint,
                                   use_id_token=previous.use_id_token if previous else None,
                                   previous=previous)

    async def _post(self, url: str, data: dict[str, str]) -> dict[str, Any]:
        # A confidential client authenticates with HTTP Basic, which every token endpoint
        # must support (RFC 6749 section 2.3.1); a public client sends only its client_id.
        auth = httpx.BasicAuth(self.client_id, self.client_secret) if self.client_secret else None
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            try:
                response = await http.post(url, data=data, auth=auth,
                                           headers={"accept": "application/json"})
                body = response.json()
            except (httpx.HTTPError, ValueError) as err:
                raise LoginError(f"request to {url} failed: {type(err).__name__}") from None
        if response.status_code >= 400 or not isinstance(body, dict):
            code = body.get("error", f"HTTP {response.status_code}") if isinstance(body, dict) else \
                f"HTTP {response.status_code}"
            raise _OAuthError(str(code))
        return body


class _OAuthError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class _LoopbackCallback:
    """A one-shot HTTP listener on 127.0.0.1 that receives the authorization redirect."""

    def __init__(self) -> None:
        self.result: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 10)
            parts = request_line.decode("latin-1").split()
            target = urlsplit(parts[1]) if len(parts) >= 2 else None
            if target is not None and target.path == "/callback" and not self.result.done():
                self.result.set_result({k: v[0] for k, v in parse_qs(target.query).items()})
                body = b"tikflow login finished; you can close this tab.\n"
                status = b"200 OK"
            else:
                body, status = b"not found\n", b"404 Not Found"
            writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain\r\ncontent-length: "
                         + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


async def fresh_token(client: OAuthClient | None = None, path: Path | None = None) -> StoredToken:
    """Return the stored token, refreshed first (and saved) when it is about to expire."""
    token = load_token(path)
    if not token.expires_soon():
        return token
    client = client or OAuthClient(token.issuer, token.client_id)
    refreshed = await client.refresh(token)
    save_token(refreshed, path)
    return refreshed
