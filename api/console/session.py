"""The signed-cookie session of the console: who is signed in, and the session secret.

The session is Starlette's ``SessionMiddleware`` cookie: signed with a secret, readable by
the browser, so it stores only the caller's identity and roles and the CSRF token, never a
bearer token or device secret.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import Request

from api.security import Principal
from tikflow.settings import Profile, Settings

SECRET_ENV = "TIKFLOW_CONSOLE_SESSION_SECRET"
SESSION_COOKIE = "tikflow_console"
# A signed-in session ends after this many seconds even when its token lives longer.
SESSION_MAX_AGE = 8 * 3600
_USER_KEY = "user"


class ConsoleUnavailable(RuntimeError):
    """The console cannot run with this configuration; the message names the setting to change."""


def session_secret(settings: Settings) -> str:
    """Return the secret that signs session cookies.

    It comes from ``TIKFLOW_CONSOLE_SESSION_SECRET`` or the file named by
    ``TIKFLOW_CONSOLE_SESSION_SECRET_FILE``. The lab profile generates one per start when
    neither is set, so lab sessions end when the api restarts. Other profiles need the
    secret because every api replica must accept the cookies the others signed.

    Raises:
        ConsoleUnavailable: outside the lab profile when no secret is configured.
    """
    secret = os.environ.get(SECRET_ENV, "").strip()
    secret_file = os.environ.get(f"{SECRET_ENV}_FILE", "").strip()
    if not secret and secret_file:
        secret = Path(secret_file).read_text(encoding="utf-8").strip()
    if secret:
        if len(secret) < 32:
            raise ConsoleUnavailable(f"{SECRET_ENV} is shorter than 32 characters; generate one "
                                     "with: python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        return secret
    if settings.env is Profile.LAB:
        return secrets.token_urlsafe(32)
    raise ConsoleUnavailable(f"the console needs {SECRET_ENV} (or {SECRET_ENV}_FILE) outside the "
                             "lab profile, the same value on every api replica")


def sign_in(request: Request, principal: Principal) -> None:
    """Start a fresh session for ``principal``, dropping anything stored before sign-in.

    NOTE: roles are read once, at sign-in. A role removed at the identity provider, or a
    break-glass account disabled, takes effect when the session ends (``SESSION_MAX_AGE``
    or the token's expiry, whichever comes first), not at once.
    """
    request.session.clear()
    expires = int(time.time()) + SESSION_MAX_AGE
    if principal.expires_at is not None:
        expires = min(expires, int(principal.expires_at))
    request.session[_USER_KEY] = {
        "sub": principal.subject,
        "iss": principal.issuer,
        "roles": sorted(principal.roles),
        "method": principal.method,
        "exp": expires,
    }


def sign_out(request: Request) -> None:
    request.session.clear()


def current_principal(request: Request) -> Principal | None:
    """Return the signed-in caller, or None when no user is signed in or the session expired."""
    stored: Any = request.session.get(_USER_KEY)
    if not isinstance(stored, dict):
        return None
    try:
        expires = int(stored["exp"])
        principal = Principal(subject=str(stored["sub"]), issuer=str(stored["iss"]),
                              roles=frozenset(str(r) for r in stored["roles"]),
                              method=str(stored["method"]), expires_at=expires)
    except (KeyError, TypeError, ValueError):
        return None
    if expires <= time.time():
        return None
    return principal
