"""Bearer JWT validation against the configured OpenID Connect issuer.

tikflow is an OAuth 2.0 resource server: it never handles passwords, it checks tokens the IdP
signed. The discovery document and the JWKS are fetched on first use and cached. A token
signed with a key id missing from the cache triggers one JWKS refetch, at most every
``auth.jwks_refresh_min_seconds``. So keys rotate without a restart, and garbage tokens cannot
make tikflow hammer the IdP.

NOTE: the caches live in each api process. They only hold public data fetched from the IdP,
so replicas need not agree; each replica fetches the JWKS once on its own.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from tikflow.settings import AuthSettings, OidcSettings

log = structlog.get_logger(__name__)

MAX_SUBJECT_LENGTH = 255
# Key types that can verify each algorithm family; a key of another type is never tried.
_KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class InvalidToken(Exception):
    """A bearer token failed validation; ``reason`` is for logs only, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IssuerUnavailable(Exception):
    """The issuer's discovery document or JWKS could not be fetched or parsed."""


@dataclass(frozen=True)
class VerifiedToken:
    """Claims of a token whose signature, issuer, audience and lifetime were checked."""

    claims: dict[str, Any]

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    @property
    def issuer(self) -> str:
        return str(self.claims["iss"])

    @property
    def expires_at(self) -> int | None:
        exp = self.claims.get("exp")
        return int(exp) if isinstance(exp, int | float) else None


class OidcVerifier:
    """Validate JWTs issued by ``oidc.issuer`` for ``oidc.audience``."""

    def __init__(self, oidc: OidcSettings, auth: AuthSettings, *,
                 clock: Callable[[], float] = time.time,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not oidc.issuer:
            raise ValueError("oidc.issuer is not set; set TIKFLOW_OIDC__ISSUER to the IdP's issuer URL")
        self.issuer = oidc.issuer.rstrip("/")
        self.audience = oidc.audience
        self.leeway = oidc.clock_skew_seconds
        self.algorithms = frozenset(auth.algorithms)
        self.refresh_interval = auth.jwks_refresh_min_seconds
        self._clock = clock
        self._http = httpx.AsyncClient(timeout=auth.http_timeout_seconds, transport=transport,
                                       follow_redirects=False)
        self._discovery: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self.jwks_fetches = 0

    async def close(self) -> None:
        await self._http.aclose()

    async def discovery(self) -> dict[str, Any]:
        """Return the issuer's OpenID discovery document, fetched once and then cached."""
        if self._discovery is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            document = await self._get_json(url)
            if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                raise IssuerUnavailable(f"discovery document at {url} names issuer "
                                        f"{document.get('issuer')!r}, not {self.issuer!r}")
            if not isinstance(document.get("jwks_uri"), str):
                raise IssuerUnavailable(f"discovery document at {url} has no jwks_uri")
            self._discovery = document
        return self._discovery

    async def verify(self, token: str) -> VerifiedToken:
        """Check ``token`` and return its claims; raise ``InvalidToken`` saying why not."""
        header = _parse_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise InvalidToken(f"algorithm {alg!r} is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("kid is not a string")

        claims = await self._verify_signature(token, alg, kid)
        self._check_claims(claims)
        return VerifiedToken(claims)

    async def _verify_signature(self, token: str, alg: str, kid: str | None) -> dict[str, Any]:
        keys = await self._key_set(refresh=False)
        claims = _decode_with_any(token, _candidate_keys(keys, alg, kid), alg)
        if claims is None:
            # An unknown kid (or, without a kid, no key that verifies) may mean the IdP rotated.
            keys = await self._key_set(refresh=True)
            claims = _decode_with_any(token, _candidate_keys(keys, alg, kid), alg)
        if claims is None:
            raise InvalidToken("signature does not verify with any key of the issuer")
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        if str(claims.get("iss", "")).rstrip("/") != self.issuer:
            raise InvalidToken("issuer mismatch")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise InvalidToken("audience mismatch")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("sub is missing")
        if len(claims["sub"]) > MAX_SUBJECT_LENGTH:
            # Audit rows store the subject in a 255-character column.
            raise InvalidToken("sub is too long")
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise InvalidToken("exp is missing")
        if now > exp + self.leeway:
            raise InvalidToken("expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, int | float) or now + self.leeway < nbf):
            raise InvalidToken("not yet valid")
        iat = claims.get("iat")
        if iat is not None and (not isinstance(iat, int | float) or now + self.leeway < iat):
            raise InvalidToken("issued in the future")

    async def _key_set(self, *, refresh: bool) -> KeySet:
        # Fast path without the lock, so a slow refetch never delays tokens the cache verifies.
        if self._keys is not None and not (refresh and self._stale()):
            return self._keys
        async with self._lock:
            # Another request may have fetched while this one waited. The interval also applies
            # while the IdP is down and nothing is cached, so outages do not multiply requests.
            if (self._keys is None or refresh) and self._stale():
                await self._fetch_keys()
            if self._keys is None:
                raise IssuerUnavailable(f"no JWKS of {self.issuer} yet; the last fetch failed, "
                                        f"next attempt after {self.refresh_interval:.0f} s")
            return self._keys

    def _stale(self) -> bool:
        return self._clock() - self._keys_fetched_at >= self.refresh_interval

    async def _fetch_keys(self) -> None:
        # Stamp the attempt first, so a failing IdP is not asked again before the interval.
        self._keys_fetched_at = self._clock()
        self.jwks_fetches += 1
        discovery = await self.discovery()
        document = await self._get_json(discovery["jwks_uri"])
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as err:
            raise IssuerUnavailable(f"JWKS at {discovery['jwks_uri']} is invalid: {err}") from None
        log.info("jwks fetched", issuer=self.issuer, keys=len(keys.keys),
                 kids=[key.kid for key in keys.keys])
        self._keys = keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as err:
            raise IssuerUnavailable(f"fetching {url} failed: {type(err).__name__}: {err}") from None
        if not isinstance(document, dict):
            raise IssuerUnavailable(f"{url} did not return a JSON object")
        return document


def _parse_header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise InvalidToken("not a compact JWS")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidToken("header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise InvalidToken("header is not a JSON object")
    if header.get("crit"):
        raise InvalidToken("critical header parameters are not supported")
    return header


def _candidate_keys(keys: KeySet, alg: str, kid: str | None) -> list[Key]:
    key_type = _KEY_TYPES.get(alg[:2])
    candidates = [key for key in keys.keys if key.key_type == key_type
                  and key.get("use", "sig") == "sig"]
    if kid is not None:
        candidates = [key for key in candidates if key.kid == kid]
    return candidates


def _decode_with_any(token: str, keys: list[Key], alg: str) -> dict[str, Any] | None:
    for key in keys:
        try:
            return dict(jwt.decode(token, key, algorithms=[alg]).claims)
        except (JoseError, ValueError):
            continue
    return None
