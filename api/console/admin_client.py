"""Admin API calls made in-process on behalf of the signed-in console user.

The console does not reimplement the admin API: each action is the same ``/api/v1`` request
a CLI would send, served by the same app through ``httpx.ASGITransport`` without a socket.
The caller's principal travels in the ASGI scope under ``CONSOLE_PRINCIPAL`` instead of a
bearer token, so no token ever sits in the browser's cookie. Only code inside this process
can set a scope key; uvicorn builds the scope of every request that arrives over the network.
The admin API therefore checks roles, validates input and audits a console action exactly as
it does a CLI call, with the console user as the actor.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, HTTPException, Request, status
from starlette.types import ASGIApp, Receive, Scope, Send

from api.authz import tool_access
from api.deps import get_principal
from api.ratelimit import RateLimited
from api.security import Principal

log = structlog.get_logger(__name__)

CONSOLE_PRINCIPAL = "tikflow.console_principal"
# Seconds one in-process admin call may take; starting a workflow waits on Temporal.
CALL_TIMEOUT = 30.0


@dataclass(frozen=True)
class ApiResult:
    """Status and decoded JSON body of one admin API response."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_text(self) -> str:
        """Return the API's error detail as one readable sentence."""
        if self.status >= 500 and self.status != 504:
            # Server errors carry no useful detail for the user; the api log has the traceback.
            return f"the admin API failed (HTTP {self.status}); the api log has the details"
        detail = self.body.get("detail") if isinstance(self.body, dict) else self.body
        if isinstance(detail, list):
            parts = []
            for problem in detail:
                location = ".".join(str(p) for p in problem.get("loc", []) if p != "body")
                parts.append(f"{location}: {problem.get('msg')}" if location else str(problem.get("msg")))
            return "; ".join(parts)
        return str(detail or f"HTTP {self.status}")

    def field_errors(self) -> dict[str, str]:
        """Return validation messages by top-level field name, for errors shown next to inputs."""
        detail = self.body.get("detail") if isinstance(self.body, dict) else None
        errors: dict[str, str] = {}
        if isinstance(detail, list):
            for problem in detail:
                location = [p for p in problem.get("loc", []) if p != "body"]
                if location:
                    errors.setdefault(str(location[0]), str(problem.get("msg")))
        return errors


class AdminApi:
    """Send admin API requests into ``app`` as a given principal."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        app.dependency_overrides[get_principal] = principal_from_console_or_bearer

    async def call(self, principal: Principal, method: str, path: str, *,
                   json: Any = None, params: dict[str, Any] | None = None) -> ApiResult:
        """Send one request to ``/api/v1{path}`` and return its status and JSON body."""
        # An exception inside a route becomes the 500 response a remote client would get,
        # so a page can show "failed" instead of failing itself.
        transport = httpx.ASGITransport(app=_WithPrincipal(self._app, principal),
                                        raise_app_exceptions=False)
        clean_params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        # ASGITransport ignores httpx timeouts, so the whole call is bounded here instead.
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                async with httpx.AsyncClient(transport=transport,
                                             base_url="http://console.internal") as client:
                    response = await client.request(method, f"/api/v1{path}", json=json,
                                                    params=clean_params)
        except TimeoutError:
            log.warning("admin API call timed out", method=method, path=path,
                        subject=principal.subject, timeout_seconds=CALL_TIMEOUT)
            return ApiResult(status=504, body={"detail": f"the admin API did not answer within "
                                                         f"{CALL_TIMEOUT:.0f} s"})
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:500] or f"HTTP {response.status_code}"}
        return ApiResult(status=response.status_code, body=body)

    async def get(self, principal: Principal, path: str, **params: Any) -> ApiResult:
        return await self.call(principal, "GET", path, params=params)

    async def post(self, principal: Principal, path: str, json: Any = None) -> ApiResult:
        return await self.call(principal, "POST", path, json=json)


class _WithPrincipal:
    """ASGI wrapper that puts the console user into the scope of an in-process request."""

    def __init__(self, app: ASGIApp, principal: Principal) -> None:
        self.app = app
        self.principal = principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[CONSOLE_PRINCIPAL] = self.principal
        await self.app(scope, receive, send)


async def principal_from_console_or_bearer(request: Request) -> Principal:
    """Return the console user of an in-process request, else authenticate the bearer token.

    Console requests count against the same per-caller rate limit as bearer requests.
    """
    principal = request.scope.get(CONSOLE_PRINCIPAL)
    if not isinstance(principal, Principal):
        return await get_principal(request)
    request.state.principal = principal
    access = tool_access(request.app.state.services)
    try:
        await access.limiter.hit(f"caller:{principal.subject}",
                                 access.settings.auth.rate_limits.per_caller_per_minute,
                                 subject=f"caller {principal.subject}")
    except RateLimited as err:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=str(err),
                            headers={"Retry-After": str(err.retry_after)}) from None
    return principal
