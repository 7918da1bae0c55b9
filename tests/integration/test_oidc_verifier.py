"""The JWT verifier against a real OpenID provider and against issuers that misbehave."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.oidc import InvalidToken, IssuerUnavailable, OidcVerifier
from api.security import TokenAuthenticator
from tests.support.oidc import MockIdP
from tikflow.settings import AuthSettings, OidcSettings, Settings


@pytest.fixture(scope="module")
def idp() -> Any:
    provider = MockIdP().start()
    yield provider
    provider.stop()


def _claims(idp: MockIdP, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": idp.issuer, "aud": "tikflow", "sub": "alice", "iat": now, "exp": now + 300} | extra


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def test_oidc_verifier_accepts_provider_token(idp: MockIdP) -> None:
    """A token the provider issued verifies, and its claims come back."""
    verifier = OidcVerifier(OidcSettings(issuer=idp.issuer), AuthSettings())
    try:
        verified = await verifier.verify(idp.token_for("alice", {"groups": ["tikflow-reader"]}))
    finally:
        await verifier.close()
    assert verified.subject == "alice"
    assert verified.issuer == idp.issuer
    assert verified.claims["groups"] == ["tikflow-reader"]
    assert verified.expires_at is not None


@dataclass(frozen=True)
class _Offset:
    seconds: int


@pytest.mark.parametrize("extra, reason", [
    # Times are offsets from when the test runs, not from collection, which may be minutes earlier.
    ({"exp": _Offset(-120)}, "expired"),
    ({"nbf": _Offset(120)}, "not yet valid"),
    ({"iat": _Offset(120)}, "issued in the future"),
    ({"aud": ["other", "another"]}, "audience mismatch"),
    ({"iss": "http://127.0.0.1:9"}, "issuer mismatch"),
    ({"sub": ""}, "sub is missing"),
    ({"sub": "x" * 256}, "sub is too long"),
    ({"exp": "tomorrow"}, "exp is missing"),
])
async def test_oidc_verifier_claim_checks(idp: MockIdP, extra: dict[str, Any], reason: str) -> None:
    """Each claim check rejects a token the provider signed, with the reason for the log."""
    verifier = OidcVerifier(OidcSettings(issuer=idp.issuer, clock_skew_seconds=30), AuthSettings())
    extra = {k: int(time.time()) + v.seconds if isinstance(v, _Offset) else v for k, v in extra.items()}
    try:
        with pytest.raises(InvalidToken) as caught:
            await verifier.verify(idp.sign(_claims(idp, **extra)))
    finally:
        await verifier.close()
    assert caught.value.reason == reason


async def test_oidc_verifier_clock_skew(idp: MockIdP) -> None:
    """Tokens within the configured clock skew of their lifetime still verify."""
    verifier = OidcVerifier(OidcSettings(issuer=idp.issuer, clock_skew_seconds=60), AuthSettings())
    now = int(time.time())
    try:
        assert await verifier.verify(idp.sign(_claims(idp, exp=now - 20)))
        assert await verifier.verify(idp.sign(_claims(idp, nbf=now + 20)))
    finally:
        await verifier.close()


async def test_oidc_verifier_multiple_audiences(idp: MockIdP) -> None:
    """A token whose audience list contains tikflow's audience verifies."""
    verifier = OidcVerifier(OidcSettings(issuer=idp.issuer), AuthSettings())
    try:
        assert await verifier.verify(idp.sign(_claims(idp, aud=["other", "tikflow"])))
    finally:
        await verifier.close()


async def test_oidc_verifier_refetch_rate_limited(idp: MockIdP) -> None:
    """Tokens with unknown key ids refetch the JWKS at most once per interval."""
    clock = FakeClock()
    verifier = OidcVerifier(OidcSettings(issuer=idp.issuer), AuthSettings(jwks_refresh_min_seconds=60),
                            clock=clock)
    try:
        await verifier.verify(idp.sign(_claims(idp)))
        assert verifier.jwks_fetches == 1
        for number in range(10):
            with pytest.raises(InvalidToken):
                await verifier.verify(idp.sign(_claims(idp), header={"kid": f"unknown-{number}"}))
        assert verifier.jwks_fetches == 1

        clock.now += 61
        with pytest.raises(InvalidToken):
            await verifier.verify(idp.sign(_claims(idp), header={"kid": "unknown-late"}))
        assert verifier.jwks_fetches == 2
    finally:
        await verifier.close()


def _issuer_transport(discovery: Any, jwks: Any = b'{"keys": []}',
                      status: int = 200) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        body = discovery if request.url.path.endswith("openid-configuration") else jwks
        return httpx.Response(status, content=body if isinstance(body, bytes) else None,
                              json=None if isinstance(body, bytes) else body)
    return httpx.MockTransport(handle)


ISSUER = "http://127.0.0.1:9"
GOOD_DISCOVERY = {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}


@pytest.mark.parametrize("transport", [
    _issuer_transport(b"\xff\xfe not json"),
    _issuer_transport({"issuer": "http://127.0.0.1:8", "jwks_uri": f"{ISSUER}/jwks"}),
    _issuer_transport({"issuer": ISSUER}),
    _issuer_transport(GOOD_DISCOVERY, jwks=b"\x80\x81"),
    _issuer_transport(GOOD_DISCOVERY, jwks={"keys": [{"kty": "RSA", "n": "!!"}]}),
    _issuer_transport(GOOD_DISCOVERY, status=503),
    _issuer_transport(["not", "an", "object"]),
], ids=["non-utf8", "wrong-issuer", "no-jwks-uri", "jwks-not-json", "bad-key", "503", "array"])
async def test_oidc_verifier_bad_issuer(idp: MockIdP, transport: httpx.MockTransport) -> None:
    """An issuer that serves garbage makes verification fail cleanly, never crash."""
    verifier = OidcVerifier(OidcSettings(issuer=ISSUER), AuthSettings(), transport=transport)
    try:
        with pytest.raises(IssuerUnavailable):
            await verifier.verify(idp.sign(_claims(idp, iss=ISSUER)))
    finally:
        await verifier.close()


async def test_oidc_authenticator_issuer_down(tmp_path: Any) -> None:
    """With the issuer unreachable and nothing cached, tokens are rejected without an error."""
    idp = MockIdP().start()
    token = idp.sign({"iss": idp.issuer, "aud": "tikflow", "sub": "a", "exp": int(time.time()) + 60})
    idp.stop()
    settings = Settings(env="lab", oidc={"issuer": idp.issuer},
                        database={"url": f"sqlite+aiosqlite:///{tmp_path}/t.db"})
    authenticator = TokenAuthenticator(settings)
    try:
        assert await authenticator.authenticate(token) is None
    finally:
        await authenticator.close()


async def test_oidc_authenticator_rejects_odd_input(idp: MockIdP, tmp_path: Any) -> None:
    """Empty, huge, non-ASCII and control-character tokens are rejected, not raised."""
    settings = Settings(env="lab", oidc={"issuer": idp.issuer},
                        database={"url": f"sqlite+aiosqlite:///{tmp_path}/t.db"})
    authenticator = TokenAuthenticator(settings)
    try:
        for token in ["", " ", "x" * 100_000, "é.é.é", "\udcff\udcfe.a.b", "a.\x00.b", "tfbg_x"]:
            assert await authenticator.authenticate(token) is None
    finally:
        await authenticator.close()


async def test_oidc_verifier_outage_backoff(idp: MockIdP) -> None:
    """While the issuer is down and nothing is cached, it is asked at most once per interval."""
    requests: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        return httpx.Response(503)

    clock = FakeClock()
    verifier = OidcVerifier(OidcSettings(issuer=ISSUER), AuthSettings(jwks_refresh_min_seconds=60),
                            clock=clock, transport=httpx.MockTransport(handle))
    token = idp.sign(_claims(idp, iss=ISSUER))
    try:
        for _ in range(5):
            with pytest.raises(IssuerUnavailable):
                await verifier.verify(token)
        assert len(requests) == 1
        clock.now += 61
        with pytest.raises(IssuerUnavailable):
            await verifier.verify(token)
        assert len(requests) == 2
    finally:
        await verifier.close()
