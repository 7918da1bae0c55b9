"""Shared pieces of console pages: templates, the signed-in user dependency, flash messages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.console.admin_client import AdminApi
from api.console.csrf import csrf_token
from api.console.session import current_principal
from api.security import Principal
from api.services import Services

TEMPLATES = Jinja2Templates(directory=Path(__file__).with_name("templates"))
_FLASH_KEY = "flash"
# Roles the device routes of the admin API admit for reads; an approver alone gets 403 there.
DEVICE_READERS = frozenset({"reader", "operator", "admin"})


class SignInRequired(Exception):
    """The page needs a signed-in user; the handler redirects to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def root(request: Request) -> str:
    """Return the path the console is mounted at, such as ``/console``."""
    return request.scope.get("root_path", "").rstrip("/")


def require_user(request: Request) -> Principal:
    """Return the signed-in user or raise ``SignInRequired`` naming the page to come back to."""
    principal = current_principal(request)
    if principal is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        raise SignInRequired(target)
    return principal


def console_path(request: Request, candidate: str | None) -> str | None:
    """Return ``candidate`` when it is a path inside the console, else None (no open redirect)."""
    base = root(request)
    if candidate and candidate.startswith(base + "/") and not candidate.startswith("//") \
            and "\\" not in candidate:
        return candidate
    return None


def home_path(request: Request, principal: Principal) -> str:
    """Return the first page for ``principal``: devices, or plans for roles that cannot list devices."""
    if principal.roles & DEVICE_READERS:
        return root(request) + "/devices"
    return root(request) + "/plans"


def login_url(request: Request, next_path: str) -> str:
    return f"{root(request)}/login?next={quote(next_path, safe='/')}"


def admin_api(request: Request) -> AdminApi:
    return request.app.state.admin_api


def services_of(request: Request) -> Services:
    return request.app.state.services


def flash(request: Request, message: str, kind: str = "info") -> None:
    """Queue a message for the next rendered page (kind: info, success or error)."""
    messages = list(request.session.get(_FLASH_KEY, []))
    messages.append({"kind": kind, "text": message[:500]})
    request.session[_FLASH_KEY] = messages[-5:]


def render(request: Request, template: str, context: dict[str, Any] | None = None, *,
           status_code: int = 200) -> HTMLResponse:
    """Render a console page with the user, CSRF token, navigation and pending messages."""
    principal = current_principal(request)
    page: dict[str, Any] = {
        "root": root(request),
        "user": principal,
        "csrf_token": csrf_token(request),
        "messages": request.session.pop(_FLASH_KEY, []),
        "temporal_ui": request.app.state.settings.temporal.ui_url.rstrip("/"),
        "namespace": request.app.state.settings.temporal.namespace,
    }
    page.update(context or {})
    response = TEMPLATES.TemplateResponse(request, template, page, status_code=status_code)
    # Pages show operational data: keep them out of shared caches and the back-forward cache.
    response.headers["cache-control"] = "no-store"
    return response


UserDep = Annotated[Principal, Depends(require_user)]
AdminApiDep = Annotated[AdminApi, Depends(admin_api)]
