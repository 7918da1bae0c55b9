"""Bearer tokens turned into principals, the authenticated callers.

Three kinds of bearer token are accepted, tried in this order:

- the development token (``var/dev-token``), in the lab profile only; settings reject it in
  other profiles and when the api binds a non-loopback address;
- break-glass tokens (``tfbg_…``) when ``auth.break_glass_enabled`` is on; every use is
  logged at WARNING and audited;
- JWTs from the configured OpenID Connect issuer, validated by ``api.oidc``.

The caller never learns why a token was rejected; the reason goes to the log only.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field

import structlog
from mcp.server.auth.provider import AccessToken

from api import breakglass
from api.authz import ROLES, roles_from_claims
from api.oidc import InvalidToken, IssuerUnavailable, OidcVerifier
from storage.audit import record_audit
from storage.db import Database
from tikflow.settings import Settings

log = structlog.get_logger(__name__)

# Real JWTs are a few KB; anything far larger is not worth parsing.
MAX_TOKEN_LENGTH = 16_384
_LOG_INTERVAL_SECONDS = 10.0


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    subject: str
    issuer: str
    roles: frozenset[str] = field(default_factory=frozenset)
    method: str = "oidc"
    expires_at: int | None = None

    @property
    def role_label(self) -> str | None:
        """Return the roles as one comma-separated string for audit rows, or None."""
        return ",".join(sorted(self.roles)) or None


class TokenAuthenticator:
    """Verify bearer tokens; implements the MCP SDK's ``TokenVerifier`` protocol."""

    def __init__(self, settings: Settings, *, db: Database | None = None,
                 oidc: OidcVerifier | None = None) -> None:
        self._settings = settings
        self._dev_token = settings.dev_token.get_secret_value() if settings.dev_token else None
        self._db = db
        if oidc is None and settings.oidc.issuer:
            oidc = OidcVerifier(settings.oidc, settings.auth)
        self.oidc = oidc
        self._rejections = _RejectionLog()

    async def close(self) -> None:
        if self.oidc is not None:
            await self.oidc.close()

    async def authenticate(self, token: str) -> Principal | None:
        """Return the caller for a valid token, or None without revealing why a token failed."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            self._rejections.note("empty or oversized token")
            return None
        if self._dev_token and hmac.compare_digest(token.encode("utf-8", "surrogateescape"),
                                                   self._dev_token.encode()):
            return Principal(subject="dev-admin", issuer="tikflow-dev", roles=frozenset(ROLES),
                             method="dev-token")
        if breakglass.looks_like_break_glass(token):
            return await self._break_glass(token)
        return await self._oidc(token)

    async def _oidc(self, token: str) -> Principal | None:
        if self.oidc is None:
            self._rejections.note("no OIDC issuer configured")
            return None
        try:
            verified = await self.oidc.verify(token)
        except InvalidToken as err:
            self._rejections.note(err.reason)
            return None
        except IssuerUnavailable as err:
            self._rejections.note(f"issuer unavailable: {err}", warning=True)
            return None
        roles = roles_from_claims(verified.claims, self._settings.auth)
        return Principal(subject=verified.subject, issuer=verified.issuer, roles=roles,
                         method="oidc", expires_at=verified.expires_at)

    async def _break_glass(self, token: str) -> Principal | None:
        if not self._settings.auth.break_glass_enabled or self._db is None:
            self._rejections.note("break-glass token presented while break-glass is off")
            return None
        use = await breakglass.find_token(self._db, token)
        if use is None:
            self._rejections.note("unknown, disabled or expired break-glass token", warning=True)
            return None
        log.warning("break-glass account used", account=use.name, role=use.role)
        await record_audit(self._db, actor=use.name, actor_issuer=breakglass.ISSUER, role=use.role,
                           action="auth:break_glass", result="ok",
                           detail=f"break-glass account {use.name} authenticated")
        return Principal(subject=use.name, issuer=breakglass.ISSUER, roles=frozenset({use.role}),
                         method="break-glass")

    async def verify_token(self, token: str) -> AccessToken | None:
        """Return the SDK's view of a valid token, or None (the SDK then returns 401)."""
        principal = await self.authenticate(token)
        if principal is None:
            return None
        return AccessToken(
            token=token,
            client_id=principal.subject,
            subject=principal.subject,
            scopes=sorted(principal.roles),
            expires_at=principal.expires_at,
            claims={"iss": principal.issuer, "method": principal.method},
        )


def principal_from_access_token(token: AccessToken | None) -> Principal:
    """Rebuild the principal the bearer middleware stored for this request."""
    if token is None:
        return Principal(subject="anonymous", issuer="none")
    claims = token.claims or {}
    return Principal(subject=token.subject or token.client_id, issuer=str(claims.get("iss", "")),
                     roles=frozenset(token.scopes), method=str(claims.get("method", "oidc")),
                     expires_at=token.expires_at)


class _RejectionLog:
    """Log rejected tokens by reason, at most once per reason every 10 s, with a count of the
    rejections not logged in between."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def note(self, reason: str, *, warning: bool = False) -> None:
        now = time.monotonic()
        if now - self._last.get(reason, float("-inf")) < _LOG_INTERVAL_SECONDS:
            self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
            return
        self._last[reason] = now
        suppressed = self._suppressed.pop(reason, 0)
        emit = log.warning if warning else log.info
        emit("bearer token rejected", reason=reason, suppressed_since_last=suppressed)
