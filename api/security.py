"""Who is calling: bearer tokens turned into principals.

This module holds the token verification the MCP SDK's bearer middleware and the admin API
share. In the lab profile a development token (``var/dev-token``) is accepted on loopback.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from mcp.server.auth.provider import AccessToken

from tikflow.settings import Settings


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    subject: str
    issuer: str
    roles: frozenset[str] = field(default_factory=frozenset)
    method: str = "oidc"


class TokenAuthenticator:
    """Verify bearer tokens; implements the MCP SDK's ``TokenVerifier`` protocol."""

    def __init__(self, settings: Settings) -> None:
        self._dev_token = settings.dev_token.get_secret_value() if settings.dev_token else None

    async def authenticate(self, token: str) -> Principal | None:
        """Return the caller for a valid token, or None; never says why a token failed."""
        if self._dev_token and hmac.compare_digest(token.encode(), self._dev_token.encode()):
            return Principal(subject="dev-admin", issuer="tikflow-dev",
                             roles=frozenset({"reader", "operator", "approver", "admin"}),
                             method="dev-token")
        return None

    async def verify_token(self, token: str) -> AccessToken | None:
        principal = await self.authenticate(token)
        if principal is None:
            return None
        return AccessToken(
            token=token,
            client_id=principal.subject,
            subject=principal.subject,
            scopes=sorted(principal.roles),
            claims={"iss": principal.issuer, "method": principal.method},
        )


def principal_from_access_token(token: AccessToken | None) -> Principal:
    """Rebuild the principal the bearer middleware stored for this request."""
    if token is None:
        return Principal(subject="anonymous", issuer="none")
    claims = token.claims or {}
    return Principal(subject=token.subject or token.client_id, issuer=str(claims.get("iss", "")),
                     roles=frozenset(token.scopes), method=str(claims.get("method", "oidc")))
