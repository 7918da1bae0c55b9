"""The browser admin console at ``/console``: server-rendered pages over the admin API.

``create_console(app)`` returns an ASGI app to mount inside the api. It reads the parent's
settings, services and authenticator, and sends every change through the parent's admin API
in-process (see ``api.console.admin_client``), so roles, validation and audit are the API's.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.console import audit_pages, auth, device_pages, incident_pages, plan_pages
from api.console.admin_client import AdminApi
from api.console.session import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    ConsoleUnavailable,
    current_principal,
    session_secret,
)
from api.console.web import SignInRequired, home_path, login_url, render, root

log = structlog.get_logger(__name__)


def create_console(app: FastAPI) -> FastAPI | PlainTextResponse:
    """Build the console for the api ``app``; mount the result at ``/console``.

    When the configuration cannot run the console (no session secret outside the lab
    profile) every console URL returns 503 naming the missing setting, and the rest of the api runs.
    """
    settings = app.state.settings
    try:
        secret = session_secret(settings)
    except ConsoleUnavailable as err:
        log.warning("console disabled", reason=str(err))
        return PlainTextResponse(f"The console is not available: {err}.", status_code=503)

    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.settings = settings
    console.state.services = app.state.services
    console.state.authenticator = app.state.authenticator
    console.state.admin_api = AdminApi(app)
    console.state.oauth = auth.build_oauth(settings)
    https = (settings.api.public_url or "").startswith("https://")
    console.add_middleware(SessionMiddleware, secret_key=secret, session_cookie=SESSION_COOKIE,
                           max_age=SESSION_MAX_AGE, path="/console", same_site="lax",
                           https_only=https)
    console.add_middleware(_SecurityHeaders)
    console.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")
    for module in (auth, device_pages, plan_pages, incident_pages, audit_pages):
        console.include_router(module.router)
    console.add_api_route("/", _home, include_in_schema=False)
    console.add_exception_handler(SignInRequired, _to_sign_in)
    console.add_exception_handler(HTTPException, _error_page)
    console.add_exception_handler(RequestValidationError, _invalid_request_page)
    return console


async def _home(request: Request) -> Response:
    principal = current_principal(request)
    if principal is None:
        return RedirectResponse(f"{root(request)}/login", status_code=303)
    return RedirectResponse(home_path(request, principal), status_code=303)


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(login_url(request, exc.next_path), status_code=303)


async def _error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(request, "error.html", {"status": exc.status_code, "detail": exc.detail},
                  status_code=exc.status_code)


async def _invalid_request_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in error['loc'][1:])}: {error['msg']}"
                         for error in exc.errors())
    return render(request, "error.html", {"status": 422, "detail": f"invalid request: {problems}"},
                  status_code=422)


class _SecurityHeaders:
    """Add headers that keep console pages out of frames and block inline and remote scripts."""

    _HEADERS = [
        (b"content-security-policy",
         b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
         b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self._HEADERS
            await send(message)

        await self.app(scope, receive, add_headers)
