"""Console sign-in: OpenID Connect (authorisation code with PKCE) or a token form.

With ``oidc.issuer`` configured the console sends the browser to the identity provider and
turns the returned token into a session. The token form accepts the development token in
the lab profile and break-glass tokens when break-glass is enabled. Either way the api's own
``TokenAuthenticator`` checks the token, and the console then drops it: the session keeps only
the resulting identity and roles.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.starlette_client import OAuth
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.authz import tool_access
from api.console.csrf import require_csrf
from api.console.session import sign_in, sign_out
from api.console.web import console_path, flash, home_path, render, root
from api.ratelimit import RateLimited
from api.security import Principal, TokenAuthenticator
from tikflow.settings import Profile, Settings

log = structlog.get_logger(__name__)
router = APIRouter()

# Sign-in attempts allowed per client address per minute, so the form cannot guess tokens fast.
SIGN_IN_ATTEMPTS_PER_MINUTE = 10
_PROVIDER = "tikflow"


def build_oauth(settings: Settings) -> OAuth | None:
    """Return the authlib client for the configured issuer, or None without one."""
    if not settings.oidc.issuer or not settings.oidc.client_id:
        return None
    oauth = OAuth()
    secret = settings.oidc.client_secret.get_secret_value() if settings.oidc.client_secret else None
    oauth.register(
        _PROVIDER,
        client_id=settings.oidc.client_id,
        client_secret=secret,
        server_metadata_url=settings.oidc.issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256"},
    )
    return oauth


def token_form_enabled(settings: Settings) -> bool:
    """Return True when the token form has something to accept: a dev or break-glass token."""
    lab_token = settings.env is Profile.LAB and settings.dev_token is not None
    return lab_token or settings.auth.break_glass_enabled


def _login_context(request: Request, next_path: str, error: str | None = None) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    return {"next": console_path(request, next_path) or "", "error": error,
            "oidc": request.app.state.oauth is not None,
            "token_form": token_form_enabled(settings),
            "lab": settings.env is Profile.LAB}


@router.get("/login", name="login")
async def login_page(request: Request, next: str | None = None) -> Response:
    """Show the sign-in choices."""
    return render(request, "login.html", _login_context(request, next or ""))


@router.post("/login", dependencies=[Depends(require_csrf)])
async def login_with_token(request: Request, token: Annotated[str, Form()] = "",
                           next: Annotated[str, Form()] = "") -> Response:
    """Sign in with the development token or a break-glass token."""
    settings: Settings = request.app.state.settings
    if not token_form_enabled(settings):
        return render(request, "login.html", _login_context(
            request, next, "token sign-in is switched off here; use your identity provider"),
            status_code=403)
    client = request.client.host if request.client else "unknown"
    try:
        await tool_access(request.app.state.services).limiter.hit(
            f"console-sign-in:{client}", SIGN_IN_ATTEMPTS_PER_MINUTE, subject=f"sign-in from {client}")
    except RateLimited as err:
        return render(request, "login.html", _login_context(request, next, str(err)), status_code=429)
    authenticator: TokenAuthenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(token.strip())
    if principal is None or principal.method == "oidc":
        # OIDC identities sign in through the provider, where their session and MFA live.
        return render(request, "login.html", _login_context(
            request, next, "that token was not accepted; check it and try again"), status_code=401)
    return _finish_sign_in(request, principal, next)


@router.get("/login/oidc", name="login_oidc")
async def login_with_oidc(request: Request, next: str | None = None) -> Response:
    """Send the browser to the identity provider (authorisation code flow with PKCE)."""
    oauth: OAuth | None = request.app.state.oauth
    if oauth is None:
        flash(request, "no identity provider is configured (oidc.issuer and oidc.client_id)", "error")
        return RedirectResponse(f"{root(request)}/login", status_code=303)
    request.session["after_sign_in"] = console_path(request, next) or ""
    redirect_uri = _callback_url(request)
    return await oauth.create_client(_PROVIDER).authorize_redirect(request, redirect_uri)


@router.get("/auth/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    """Exchange the authorisation code, verify the token and start the session."""
    oauth: OAuth | None = request.app.state.oauth
    next_path = request.session.get("after_sign_in") or ""
    if oauth is None:
        return RedirectResponse(f"{root(request)}/login", status_code=303)
    try:
        token = await oauth.create_client(_PROVIDER).authorize_access_token(request)
    except OAuthError as err:
        log.info("console sign-in failed at the identity provider", error=err.error)
        return render(request, "login.html", _login_context(
            request, next_path, f"sign-in failed at the identity provider ({err.error}); try again"),
            status_code=401)
    principal = await _principal_from_tokens(request.app.state.authenticator, token)
    if principal is None:
        return render(request, "login.html", _login_context(
            request, next_path, "the identity provider's token was not accepted by tikflow; "
                                "ask its administrator to check the audience and signing keys"),
            status_code=401)
    return _finish_sign_in(request, principal, next_path)


async def _principal_from_tokens(authenticator: TokenAuthenticator,
                                 token: dict[str, Any]) -> Principal | None:
    # The access token is what the admin API would see; some providers issue opaque access
    # tokens, and then the ID token (audience = client id) identifies the user instead.
    for name in ("access_token", "id_token"):
        value = token.get(name)
        if isinstance(value, str) and value:
            principal = await authenticator.authenticate(value)
            if principal is not None:
                return principal
    return None


def _finish_sign_in(request: Request, principal: Principal, next_path: str) -> Response:
    if not principal.roles:
        return render(request, "login.html", _login_context(
            request, next_path, "you are signed in at the identity provider but hold no tikflow "
                                "role; ask for one of: reader, operator, approver, admin"),
            status_code=403)
    sign_in(request, principal)
    log.info("console sign-in", subject=principal.subject, method=principal.method,
             roles=principal.role_label)
    target = console_path(request, next_path) or home_path(request, principal)
    return RedirectResponse(target, status_code=303)


@router.post("/logout", dependencies=[Depends(require_csrf)])
async def logout(request: Request) -> Response:
    """End the session."""
    sign_out(request)
    return RedirectResponse(f"{root(request)}/login", status_code=303)


def _callback_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    if settings.api.public_url:
        return f"{settings.api.public_url.rstrip('/')}{root(request)}/auth/callback"
    return str(request.url_for("oidc_callback"))
