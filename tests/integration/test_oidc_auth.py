"""Authentication and authorisation against a real OpenID provider, through MCP and the admin API."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
import structlog
from fastapi import Depends
from fastapi.routing import APIRoute
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import select

from api.authz import ROLES, TIERS, AccessDenied, AccessMatrix, authorize_plan, tool_access
from api.breakglass import create_account
from api.deps import require_tier
from api.ratelimit import RateLimiter
from api.security import Principal
from storage.models import AuditEvent, Device, Plan
from tests.support.oidc import CLIENT_SECRET, MockIdP, RunningApi, running_api
from tikflow.settings import Settings

AUDIENCE = "tikflow"
GROUPS = {"reader": "tikflow-reader", "operator": "tikflow-operator",
          "approver": "tikflow-approver", "admin": "tikflow-admin"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "test", "version": "1"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.fixture(scope="module")
def idp() -> Any:
    provider = MockIdP().start()
    yield provider
    provider.stop()


def _settings(tmp_path: Any, issuer: str, **auth: Any) -> Any:
    def build(port: int) -> Settings:
        return Settings(
            env="lab",
            var_dir=tmp_path,
            database={"url": f"sqlite+aiosqlite:///{tmp_path}/tikflow.db"},
            api={"host": "127.0.0.1", "port": port},
            oidc={"issuer": issuer, "audience": AUDIENCE, "clock_skew_seconds": 30},
            auth={"break_glass_enabled": True, "jwks_refresh_min_seconds": 0,
                  "matrix": {"operator": {"apply": ["lab"]}, "reader": {"read": ["lab", "staging"]}},
                  "rate_limits": {"per_caller_per_minute": 1000, "per_device_per_minute": 1000},
                  **auth},
        )
    return build


@pytest.fixture(scope="module")
async def api(idp: MockIdP, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningApi]:
    tmp_path = tmp_path_factory.mktemp("oidc-api")
    async with running_api(_settings(tmp_path, idp.issuer)) as running:
        await _seed(running)
        yield running


async def _seed(api: RunningApi) -> None:
    db = api.app.state.services.db
    async with db.session() as session:
        for env in ("lab", "prod"):
            session.add(Device(id=f"dev-{env}", name=f"router-{env}", address="127.0.0.1", port={"lab": 1, "prod": 2}[env],
                               transport="api", environment=env, status="active"))
        for env in ("lab", "prod"):
            session.add(Plan(id=f"plan-{env}", description=f"{env} plan", author="seed",
                             plan_hash="0" * 64, status="planned", risk="low",
                             device_ids=[f"dev-{env}"], environments=[env]))


@asynccontextmanager
async def mcp_client(api: RunningApi, token: str) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async with Client(streamable_http_client(f"{api.url}/mcp", http_client=http)) as client:
            yield client


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> Any:
    """Every stdlib and structlog line logged during the test, as text."""
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as entries:
        yield lambda: caplog.text + "\n".join(json.dumps(e, default=str) for e in entries)


async def _audit_since(api: RunningApi, after_id: int) -> list[AuditEvent]:
    async with api.app.state.services.db.session() as session:
        return list((await session.scalars(select(AuditEvent).where(AuditEvent.id > after_id)
                                           .order_by(AuditEvent.id))).all())


async def _last_audit_id(api: RunningApi) -> int:
    events = await _audit_since(api, 0)
    return events[-1].id if events else 0


def _tool_tiers(tools: Any) -> dict[str, str]:
    return {tool.name: tool.meta["tikflow/tier"] for tool in tools}


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def _assert_no_secrets(texts: list[str], secrets: list[str]) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text


async def test_oidc_roles_see_matrix_tools(idp: MockIdP, api: RunningApi, captured_logs: Any) -> None:
    """Each role's tools/list contains exactly the tools whose tier the matrix grants it somewhere."""
    matrix = AccessMatrix.from_settings(api.settings.auth)
    tokens = {role: idp.token_for(f"{role}@example.com", {"groups": [GROUPS[role]]}) for role in ROLES}
    tokens["none"] = idp.token_for("nobody@example.com", {"groups": ["unrelated"]})
    start = await _last_audit_id(api)

    async with mcp_client(api, tokens["admin"]) as client:
        all_tools = _tool_tiers((await client.list_tools()).tools)
    assert {"device.list.v1", "plan.create.v1", "plan.apply.v1", "plan.status.v1"} <= set(all_tools)

    for role, token in tokens.items():
        async with mcp_client(api, token) as client:
            visible = set(_tool_tiers((await client.list_tools()).tools))
        roles = [] if role == "none" else [role]
        expected = {name for name, tier in all_tools.items() if matrix.allows(roles, tier)}
        assert visible == expected, role

    async with mcp_client(api, tokens["reader"]) as client:
        reader_tools = {tool.name for tool in (await client.list_tools()).tools}
    assert "device.list.v1" in reader_tools
    assert "plan.create.v1" not in reader_tools
    assert "plan.apply.v1" not in reader_tools
    async with mcp_client(api, tokens["none"]) as client:
        assert (await client.list_tools()).tools == []

    assert await _audit_since(api, start) == []
    _assert_no_secrets([captured_logs()], list(tokens.values()))


async def test_oidc_tool_calls_follow_matrix(idp: MockIdP, api: RunningApi, captured_logs: Any) -> None:
    """Tool calls are allowed or refused by tier and device environment, one audit event each."""
    tokens = {role: idp.token_for(f"{role}@example.com", {"groups": [GROUPS[role]]}) for role in ROLES}
    start = await _last_audit_id(api)
    calls = 0

    async with mcp_client(api, tokens["reader"]) as client:
        result = await client.call_tool("device.list.v1", {})
        calls += 1
        assert not result.is_error, _text(result)
        assert {item["name"] for item in result.structured_content["items"]} == {"router-lab", "router-prod"}

        result = await client.call_tool("plan.create.v1", {"description": "x", "changes": []})
        calls += 1
        assert result.is_error
        assert "needs plan access" in _text(result)

        result = await client.call_tool("system.get_overview.v1", {"device": "router-prod"})
        calls += 1
        assert result.is_error
        assert "read access on prod devices" in _text(result)

    async with mcp_client(api, tokens["operator"]) as client:
        result = await client.call_tool("plan.apply.v1", {"plan_id": "plan-prod", "plan_hash": "1" * 64})
        calls += 1
        assert result.is_error
        assert "needs apply access on prod devices" in _text(result)

        # Allowed on lab: the call passes authorisation and is refused by the plan hash check.
        result = await client.call_tool("plan.apply.v1", {"plan_id": "plan-lab", "plan_hash": "1" * 64})
        calls += 1
        assert result.is_error
        assert "apply access" not in _text(result)

    async with mcp_client(api, tokens["approver"]) as client:
        result = await client.call_tool("plan.status.v1", {"plan_id": "plan-prod"})
        calls += 1
        assert not result.is_error, _text(result)
        assert result.structured_content["status"] == "planned"

    events = await _audit_since(api, start)
    assert len(events) == calls
    assert [e.action for e in events] == ["tool:device.list.v1", "tool:plan.create.v1",
                                          "tool:system.get_overview.v1", "tool:plan.apply.v1",
                                          "tool:plan.apply.v1", "tool:plan.status.v1"]
    assert [e.result for e in events] == ["ok", "denied", "denied", "denied", "rejected", "ok"]
    assert events[0].actor == "reader@example.com"
    assert events[0].actor_issuer == idp.issuer
    assert events[0].role == "reader"
    assert events[2].device_ids == ["dev-prod"]
    assert events[3].device_ids == ["dev-prod"]
    assert events[3].plan_id == "plan-prod"
    assert all(e.request_id for e in events)
    rows = [json.dumps(e.arguments) + (e.detail or "") for e in events]
    _assert_no_secrets([captured_logs(), *rows], list(tokens.values()))


async def test_oidc_admin_routes_follow_roles(idp: MockIdP, api: RunningApi, captured_logs: Any) -> None:
    """Admin routes admit exactly the allowed roles, and each request is audited once."""
    tokens = {role: idp.token_for(f"{role}@example.com", {"groups": [GROUPS[role]]}) for role in ROLES}
    tokens["none"] = idp.token_for("nobody@example.com", {"groups": []})
    start = await _last_audit_id(api)
    expected = {
        "/api/v1/plans": {"reader": 200, "operator": 200, "approver": 200, "admin": 200, "none": 403},
        "/api/v1/audit": {"reader": 403, "operator": 403, "approver": 200, "admin": 200, "none": 403},
    }
    requests = 0
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for path, by_role in expected.items():
            for role, status in by_role.items():
                response = await http.get(path, headers={"Authorization": f"Bearer {tokens[role]}"})
                requests += 1
                assert response.status_code == status, (path, role, response.text)

    events = await _audit_since(api, start)
    assert len(events) == requests
    assert {e.action for e in events} == {"api:GET /api/v1/plans", "api:GET /api/v1/audit"}
    assert sum(e.result == "denied" for e in events) == 4
    _assert_no_secrets([captured_logs(), *[json.dumps(e.arguments) for e in events]],
                       list(tokens.values()))


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _bad_tokens(idp: MockIdP) -> dict[str, str]:
    now = int(time.time())
    good = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory@example.com", "iat": now,
            "exp": now + 600, "groups": [GROUPS["admin"]]}
    own_key = RSAKey.generate_key(2048)
    public_jwks = httpx.get(f"{idp.issuer}/jwks").json()
    public_as_secret = OctKey.import_key(json.dumps(public_jwks["keys"][0]).encode())
    return {
        "expired": idp.sign(good | {"iat": now - 7200, "exp": now - 3600}),
        "not yet valid": idp.sign(good | {"nbf": now + 3600}),
        "wrong issuer": idp.sign(good | {"iss": "http://127.0.0.1:1"}),
        "wrong audience": idp.sign(good | {"aud": "another-api"}),
        "no audience": idp.sign({k: v for k, v in good.items() if k != "aud"}),
        "unsigned": _unsigned(good),
        "wrongly signed": jwt.encode({"alg": "RS256"}, good, own_key),
        "HS256 with the public key": jwt.encode({"alg": "HS256"}, good, public_as_secret),
        "malformed": "not-a-jwt",
        "two parts": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0",
        "garbage header": "%%%.%%%.%%%",
        "oversized": "a" * 20_000,
        "unknown break-glass": "tfbg_" + "x" * 43,
    }


async def test_oidc_rejects_bad_tokens(idp: MockIdP, api: RunningApi, captured_logs: Any) -> None:
    """Invalid tokens get the same bare 401 on /mcp and /api/v1, with a discovery challenge."""
    bad = _bad_tokens(idp)
    start = await _last_audit_id(api)
    mcp_bodies, api_bodies = set(), set()
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for case, token in bad.items():
            headers = {"Authorization": f"Bearer {token}"}
            response = await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS | headers)
            assert response.status_code == 401, case
            assert 'resource_metadata="' in response.headers["www-authenticate"], case
            mcp_bodies.add(response.text)

            response = await http.get("/api/v1/plans", headers=headers)
            assert response.status_code == 401, case
            assert "resource_metadata=" in response.headers["www-authenticate"], case
            api_bodies.add(response.text)

    assert len(mcp_bodies) == 1
    assert len(api_bodies) == 1
    for body in mcp_bodies | api_bodies:
        for word in ("expired", "issuer", "audience", "signature", "algorithm"):
            assert word not in body.lower()

    events = await _audit_since(api, start)
    assert len(events) == len(bad)
    assert all(e.action == "api:GET /api/v1/plans" and e.result == "denied" for e in events)
    assert all(e.actor == "anonymous" for e in events)
    log_text = captured_logs()
    assert "expired" in log_text
    _assert_no_secrets([log_text, *[json.dumps(e.arguments) for e in events]],
                       [t for t in bad.values() if len(t) > 20] + [CLIENT_SECRET])


async def test_oidc_protected_resource_metadata(idp: MockIdP, api: RunningApi) -> None:
    """MCP clients find the issuer through the 401 challenge and the metadata document."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        response = await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        metadata_url = challenge.split('resource_metadata="')[1].split('"')[0]
        assert metadata_url == f"{api.url}/.well-known/oauth-protected-resource/mcp"

        metadata = (await http.get(metadata_url)).json()
    assert metadata["resource"] == f"{api.url}/mcp"
    assert [url.rstrip("/") for url in metadata["authorization_servers"]] == [idp.issuer]


async def test_oidc_key_rotation_is_picked_up(idp: MockIdP, api: RunningApi) -> None:
    """After the provider rotates its key, new tokens verify after one JWKS refetch."""
    verifier = api.app.state.authenticator.oidc
    old_token = idp.token_for("rotor@example.com", {"groups": [GROUPS["reader"]]})
    assert await api.app.state.authenticator.authenticate(old_token) is not None
    fetches = verifier.jwks_fetches

    idp.rotate_key()
    new_token = idp.token_for("rotor@example.com", {"groups": [GROUPS["reader"]]})
    async with mcp_client(api, new_token) as client:
        result = await client.call_tool("device.list.v1", {})
    assert not result.is_error, _text(result)
    assert verifier.jwks_fetches == fetches + 1
    # The old key is gone from the JWKS, so tokens it signed no longer verify.
    assert await api.app.state.authenticator.authenticate(old_token) is None


async def test_oidc_rate_limits_callers(idp: MockIdP, api: RunningApi) -> None:
    """Past the per-caller limit, tools return a rate-limit error and the api returns 429."""
    access = tool_access(api.app.state.services)
    saved_limiter = access.limiter
    saved_limit = access.settings.auth.rate_limits.per_caller_per_minute
    # A fixed clock keeps every hit in one window, whatever the wall clock does.
    access.limiter = RateLimiter(api.app.state.services.db, clock=lambda: 1_000_000_040.0)
    access.settings.auth.rate_limits.per_caller_per_minute = 2
    token = idp.token_for("busy@example.com", {"groups": [GROUPS["admin"]]})
    start = await _last_audit_id(api)
    try:
        async with mcp_client(api, token) as client:
            for _ in range(2):
                assert not (await client.call_tool("device.list.v1", {})).is_error
            result = await client.call_tool("device.list.v1", {})
        assert result.is_error
        assert "rate limit exceeded for caller busy@example.com" in _text(result)
        assert "retry in 40 s" in _text(result)

        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            response = await http.get("/api/v1/plans", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "40"
    finally:
        access.limiter = saved_limiter
        access.settings.auth.rate_limits.per_caller_per_minute = saved_limit
    events = await _audit_since(api, start)
    assert [e.result for e in events] == ["ok", "ok", "rate_limited", "rate_limited"]


async def test_oidc_break_glass_when_idp_down(tmp_path: Any, captured_logs: Any) -> None:
    """With the provider stopped, a break-glass token still works and every use is audited."""
    idp = MockIdP().start()
    async with running_api(_settings(tmp_path, idp.issuer)) as api:
        db = api.app.state.services.db
        token = await create_account(db, name="oncall", role="admin", created_by="test")
        oidc_token = idp.token_for("cached@example.com", {"groups": [GROUPS["reader"]]})
        assert await api.app.state.authenticator.authenticate(oidc_token) is not None
        idp.stop()
        # Keys fetched before the outage still verify tokens the provider issued earlier.
        assert await api.app.state.authenticator.authenticate(oidc_token) is not None
        start = await _last_audit_id(api)

        async with mcp_client(api, token) as client:
            result = await client.call_tool("device.list.v1", {})
        assert not result.is_error, _text(result)
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
            response = await http.get("/api/v1/audit", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200

        events = await _audit_since(api, start)
        actions = [e.action for e in events]
        assert actions.count("tool:device.list.v1") == 1
        assert actions.count("api:GET /api/v1/audit") == 1
        uses = [e for e in events if e.action == "auth:break_glass"]
        # One per authenticated HTTP request: MCP initialize, initialized, tools/call, and so on.
        assert len(uses) >= 2
        assert all(e.actor == "oncall" and e.role == "admin" for e in uses)
        tool_event = events[actions.index("tool:device.list.v1")]
        assert tool_event.actor_issuer == "tikflow:break-glass"
        log_text = captured_logs()
        assert "break-glass account used" in log_text
        assert "warning" in log_text.lower()
        _assert_no_secrets([log_text, *[json.dumps(e.arguments) + (e.detail or "") for e in events]],
                           [token, token.removeprefix("tfbg_")])


async def test_oidc_break_glass_off_rejects(tmp_path: Any) -> None:
    """With break-glass switched off, a valid break-glass token is refused with 401."""
    idp = MockIdP().start()
    try:
        async with running_api(_settings(tmp_path, idp.issuer, break_glass_enabled=False)) as api:
            token = await create_account(api.app.state.services.db, name="oncall", role="admin",
                                         created_by="test")
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
                response = await http.get("/api/v1/plans", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401
    finally:
        idp.stop()


def test_oidc_tiers_cover_matrix() -> None:
    """The matrix printed by the CLI covers every role and tier."""
    rows = AccessMatrix.from_settings(Settings().auth).rows()
    assert {(role, tier) for role, tier, _ in rows} == {(r, t) for r in ROLES for t in TIERS}


async def test_oidc_route_tier_follows_matrix(idp: MockIdP, api: RunningApi) -> None:
    """A route guarded by require_tier admits exactly the roles the matrix grants that tier."""
    async def plan_route(principal: Principal = Depends(require_tier("plan"))) -> dict[str, str]:
        return {"subject": principal.subject}

    # Inserted first: the MCP app mounted at "/" would otherwise take the path.
    api.app.router.routes.insert(0, APIRoute("/api/v1/test-plan-tier", plan_route))
    matrix = AccessMatrix.from_settings(api.settings.auth)
    responses = {}
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for role in ROLES:
            token = idp.token_for(f"{role}@example.com", {"groups": [GROUPS[role]]})
            responses[role] = await http.get("/api/v1/test-plan-tier",
                                             headers={"Authorization": f"Bearer {token}"})
    for role, response in responses.items():
        expected = 200 if matrix.allows([role], "plan") else 403
        assert response.status_code == expected, (role, response.text)
    assert responses["reader"].status_code == 403
    assert "needs plan access" in responses["reader"].json()["detail"]
    assert responses["operator"].json() == {"subject": "operator@example.com"}


async def test_oidc_plan_routes_helper(api: RunningApi) -> None:
    """authorize_plan checks a tier against every environment of the plan."""
    services = api.app.state.services
    with pytest.raises(AccessDenied, match="needs apply access on prod devices"):
        await authorize_plan(services, ["operator"], "plan-prod", "apply", what="applying plan-prod")
    await authorize_plan(services, ["operator"], "plan-lab", "apply", what="applying plan-lab")
    await authorize_plan(services, ["approver"], "plan-prod", "apply", what="applying plan-prod")
    await authorize_plan(services, ["reader"], "no-such-plan", "apply", what="applying a plan")
