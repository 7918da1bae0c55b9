"""CSRF protection for console forms: a synchroniser token kept in the session.

Every page that renders a form gets the session's token for a hidden ``csrf_token`` field,
and every POST must send it back. The comparison is constant-time. SameSite=Lax cookies
already stop most cross-site POSTs; the token also covers same-site attackers and old browsers.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request, status

FIELD = "csrf_token"
HEADER = "x-csrf-token"
_SESSION_KEY = "csrf"


def csrf_token(request: Request) -> str:
    """Return the session's CSRF token, creating it on first use."""
    token = request.session.get(_SESSION_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session[_SESSION_KEY] = token
    return token


async def require_csrf(request: Request) -> None:
    """Reject a POST whose form field or header does not carry the session's CSRF token.

    Raises:
        HTTPException: 403 when the token is missing or wrong.
    """
    expected = request.session.get(_SESSION_KEY)
    sent = request.headers.get(HEADER)
    if sent is None:
        form = await request.form()
        value = form.get(FIELD)
        sent = value if isinstance(value, str) else None
    # compare_digest accepts only ASCII in str, so compare bytes: a forged field may hold anything.
    if not isinstance(expected, str) or not sent or not hmac.compare_digest(
            sent.encode("utf-8", "surrogateescape"), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail="the form's security token is missing or out of date; reload "
                                   "the page and submit the form again")
