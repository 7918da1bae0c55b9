"""The audit trail: append-only storage, queries and export over the admin API and the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.routing import APIRoute
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from api.admin.audit import AuditFilter, iter_audit, query_audit
from storage.audit import record_audit
from storage.db import Database
from storage.migrate import upgrade
from storage.models import AuditEvent, Device
from tests.support.oidc import RunningApi, running_api
from tikflow.cli import app as cli_app
from tikflow.settings import Settings, get_settings

DEV_TOKEN = "audit-test-dev-token-0123456789"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SEED = [
    # actor, action, plan, devices, result, minutes after T0
    ("alice", "tool:plan.create.v1", "p1", ["d1", "d2"], "ok", 0),
    ("alice", "tool:plan.apply.v1", "p1", ["d1", "d2"], "denied", 1),
    ("bob", "tool:plan.apply.v1", "p1", ["d1", "d2"], "ok", 2),
    ("bob", "tool:device.list.v1", None, [], "ok", 3),
    ("carol", "tool:system.get_overview.v1", None, ["d3"], "device_error", 4),
    ("carol", "api:GET /api/v1/plans", None, [], "ok", 5),
]


def _settings(tmp_path: Any) -> Any:
    def build(port: int) -> Settings:
        return Settings(env="lab", var_dir=tmp_path, dev_token=DEV_TOKEN,
                        database={"url": f"sqlite+aiosqlite:///{tmp_path}/tikflow.db"},
                        api={"host": "127.0.0.1", "port": port})
    return build


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningApi]:
    tmp_path = tmp_path_factory.mktemp("audit-api")
    async with running_api(_settings(tmp_path)) as running:
        async with running.app.state.services.db.session() as session:
            session.add(Device(id="d3", name="core-3", address="127.0.0.1", port=1, transport="api",
                               environment="lab", status="active"))
            for actor, action, plan, devices, result, minutes in SEED:
                session.add(AuditEvent(at=T0 + timedelta(minutes=minutes), actor=actor, action=action,
                                       plan_id=plan, device_ids=devices, result=result,
                                       arguments={}, role="operator"))
        yield running


async def _get(api: RunningApi, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        return await http.get(path, params=params, headers={"Authorization": f"Bearer {DEV_TOKEN}"})


def _seeded(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Return (actor, action) of the seeded events among ``items``, ignoring request audits."""
    seeded = {(actor, action) for actor, action, *_ in SEED}
    return [(i["actor"], i["action"]) for i in items if (i["actor"], i["action"]) in seeded]


@pytest.mark.parametrize("params, expected", [
    ({"actor": "alice"}, [("alice", "tool:plan.apply.v1"), ("alice", "tool:plan.create.v1")]),
    ({"action": "tool:plan.apply.v1"}, [("bob", "tool:plan.apply.v1"), ("alice", "tool:plan.apply.v1")]),
    ({"plan": "p1", "result": "ok"}, [("bob", "tool:plan.apply.v1"), ("alice", "tool:plan.create.v1")]),
    ({"device": "d3"}, [("carol", "tool:system.get_overview.v1")]),
    ({"device": "core-3"}, [("carol", "tool:system.get_overview.v1")]),
    ({"device": "d"}, []),
    ({"result": "device_error"}, [("carol", "tool:system.get_overview.v1")]),
    ({"since": "2026-01-01T12:02:00Z", "until": "2026-01-01T12:04:00Z"},
     [("bob", "tool:device.list.v1"), ("bob", "tool:plan.apply.v1")]),
    ({"since": "2026-01-01T13:03:00+01:00", "until": "2026-01-01T12:04:00"},
     [("bob", "tool:device.list.v1")]),
    ({"action": "tool:plan.*", "actor": "alice"},
     [("alice", "tool:plan.apply.v1"), ("alice", "tool:plan.create.v1")]),
])
async def test_audit_query_filters(api: RunningApi, params: dict[str, str],
                                   expected: list[tuple[str, str]]) -> None:
    """Each filter narrows the result to the matching events, newest first; a device filter
    accepts the device's id or name."""
    response = await _get(api, "/api/v1/audit", **params)
    assert response.status_code == 200, response.text
    assert _seeded(response.json()["items"]) == expected


async def test_audit_query_pagination(api: RunningApi) -> None:
    """Pages of ``limit`` events follow each other through next_before_id without overlap."""
    seen: list[int] = []
    before: int | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, "until": "2026-01-02T00:00:00Z"}
        if before is not None:
            params["before_id"] = before
        body = (await _get(api, "/api/v1/audit", **params)).json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        before = body["next_before_id"]
        if before is None:
            break
    assert len(seen) == len(SEED)
    assert seen == sorted(seen, reverse=True)
    assert pages == 4


async def test_audit_query_rejects_bad_input(api: RunningApi) -> None:
    """Malformed filters are a 422 naming the parameter."""
    response = await _get(api, "/api/v1/audit", since="yesterday")
    assert response.status_code == 422
    assert "since" in response.text
    response = await _get(api, "/api/v1/audit", limit=0)
    assert response.status_code == 422


async def test_audit_export_jsonl(api: RunningApi) -> None:
    """The export streams every matching event as one JSON object per line, oldest first."""
    response = await _get(api, "/api/v1/audit/export", action="tool:*", until="2026-01-02T00:00:00Z")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = response.text.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["action"] for e in events] == [action for _, action, *_ in SEED if action.startswith("tool:")]
    assert events[0]["at"] == "2026-01-01T12:00:00+00:00"
    assert events[0]["device_ids"] == ["d1", "d2"]


async def test_audit_admin_request_redacted(api: RunningApi) -> None:
    """An admin request is audited once, with secrets in its query and body redacted."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        response = await http.post("/api/v1/plans?token=query-secret-value&limit=5",
                                   json={"password": "body-secret-value", "changes": "x"},
                                   headers={"Authorization": f"Bearer {DEV_TOKEN}",
                                            "x-request-id": "req-redact-1"})
    assert response.status_code == 422
    body = (await _get(api, "/api/v1/audit", actor="dev-admin", action="api:POST /api/v1/plans")).json()
    events = [e for e in body["items"] if e["request_id"] == "req-redact-1"]
    assert len(events) == 1
    event = events[0]
    assert event["result"] == "rejected"
    assert event["detail"] == "HTTP 422"
    assert event["arguments"]["query"] == {"token": "***", "limit": "5"}
    assert event["arguments"]["body"] == {"password": "***", "changes": "x"}
    dumped = json.dumps(body)
    assert "query-secret-value" not in dumped
    assert "body-secret-value" not in dumped
    assert DEV_TOKEN not in dumped


async def test_audit_unknown_route_audited(api: RunningApi) -> None:
    """A request to an unknown /api/v1 path is audited too, without its unread body."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        response = await http.put("/api/v1/audit", json={"secret": "s"},
                                  headers={"x-request-id": "req-unknown-1"})
    # No admin route takes PUT here, so the request falls through to the MCP app's 404.
    assert response.status_code == 404
    body = (await _get(api, "/api/v1/audit", actor="anonymous", action="api:PUT /api/v1/audit")).json()
    events = [e for e in body["items"] if e["request_id"] == "req-unknown-1"]
    assert len(events) == 1
    assert events[0]["result"] == "rejected"
    assert "body" not in events[0]["arguments"]


async def test_audit_path_params_become_template(api: RunningApi) -> None:
    """Path parameters are grouped under the route template and kept as arguments."""
    response = await _get(api, "/api/v1/plans/plan-xyz")
    assert response.status_code == 404
    body = (await _get(api, "/api/v1/audit", plan="plan-xyz")).json()
    assert len(body["items"]) == 1
    assert body["items"][0]["action"] == "api:GET /api/v1/plans/{plan_id}"
    assert body["items"][0]["arguments"]["path"] == {"plan_id": "plan-xyz"}


async def test_audit_cli_matches_api(api: RunningApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """`tikflow audit --jsonl` exports the same events as the API for the same filters."""
    monkeypatch.setenv("TIKFLOW_DATABASE__URL", api.settings.database.url)
    get_settings.cache_clear()
    try:
        # The CLI runs its own event loop, so it runs in a thread here.
        result = await asyncio.to_thread(CliRunner().invoke, cli_app,
                                         ["audit", "--jsonl", "--actor", "bob"])
        table = await asyncio.to_thread(CliRunner().invoke, cli_app,
                                        ["audit", "--actor", "carol", "--result", "device_error"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    cli_events = [json.loads(line) for line in result.stdout.splitlines()]
    api_events = [json.loads(line) for line in
                  (await _get(api, "/api/v1/audit/export", actor="bob")).text.splitlines()]
    assert cli_events == api_events
    assert [e["action"] for e in cli_events] == ["tool:plan.apply.v1", "tool:device.list.v1"]
    assert table.exit_code == 0, table.output
    assert "carol" in table.stdout
    assert "d3" in table.stdout
    assert "bob" not in table.stdout


async def test_audit_rows_are_append_only(database_url: str) -> None:
    """After the migrations, UPDATE and DELETE on audit_events fail on every backend."""
    upgrade(database_url)
    db = Database(database_url)
    try:
        await record_audit(db, actor="alice", action="tool:device.list.v1", result="ok")
        for statement in (update(AuditEvent).values(actor="mallory"), delete(AuditEvent)):
            with pytest.raises(DBAPIError, match="append-only"):
                async with db.session() as session:
                    await session.execute(statement)
        async with db.session() as session:
            rows = (await session.execute(text("SELECT actor FROM audit_events"))).all()
        assert [row.actor for row in rows] == ["alice"]
    finally:
        await db.dispose()


async def test_audit_route_may_record_its_own(api: RunningApi) -> None:
    """A route that writes its own audit event suppresses the middleware's generic one."""

    async def self_audited(request: Request) -> dict[str, str]:
        await record_audit(api.app.state.services.db, actor="route", action="test.self-audited",
                           result="ok", request_id="req-self-1")
        request.state.audit_recorded = True
        return {"ok": "yes"}

    async def plain() -> dict[str, str]:
        return {"ok": "yes"}

    # Inserted first: the MCP app mounted at "/" would otherwise take the paths.
    api.app.router.routes.insert(0, APIRoute("/api/v1/test-self-audited", self_audited))
    api.app.router.routes.insert(0, APIRoute("/api/v1/test-plain", plain))
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for path in ("/api/v1/test-self-audited", "/api/v1/test-plain"):
            response = await http.get(path, headers={"x-request-id": f"req-{path[8:]}"})
            assert response.status_code == 200

    body = (await _get(api, "/api/v1/audit", since="2026-06-01T00:00:00Z")).json()
    actions = [e["action"] for e in body["items"]]
    assert actions.count("test.self-audited") == 1
    assert actions.count("api:GET /api/v1/test-self-audited") == 0
    assert actions.count("api:GET /api/v1/test-plain") == 1


async def test_audit_filters_on_each_backend(database_url: str) -> None:
    """Device, action-prefix and time filters give the same answers on SQLite and PostgreSQL."""
    await asyncio.to_thread(upgrade, database_url)
    db = Database(database_url)
    try:
        async with db.session() as session:
            session.add(Device(id="dev_1", name="edge%1", address="127.0.0.1", port=1,
                               transport="api", environment="lab", status="active"))
            for minutes, action, devices in [(0, "tool:plan.apply.v1", ["dev_1"]),
                                             (1, "tool:device.list.v1", []),
                                             (2, "api:GET /api/v1/plans", ["devX1"])]:
                session.add(AuditEvent(at=T0 + timedelta(minutes=minutes), actor="alice",
                                       action=action, device_ids=devices, result="ok", arguments={}))

        async def actions(**filters: Any) -> list[str]:
            return [e.action for e in await query_audit(db, AuditFilter(**filters))]

        assert await actions(device="dev_1") == ["tool:plan.apply.v1"]
        assert await actions(device="edge%1") == ["tool:plan.apply.v1"]
        # LIKE wildcards in the filter are escaped: "dev_1" must not match "devX1".
        assert await actions(device="dev%") == []
        assert await actions(action="tool:*") == ["tool:device.list.v1", "tool:plan.apply.v1"]
        assert await actions(since=T0 + timedelta(minutes=1)) == ["api:GET /api/v1/plans",
                                                                 "tool:device.list.v1"]
        assert await actions(until=T0 + timedelta(minutes=1)) == ["tool:plan.apply.v1"]
        exported = [e.action async for e in iter_audit(db, AuditFilter(actor="alice"))]
        assert exported == ["tool:plan.apply.v1", "tool:device.list.v1", "api:GET /api/v1/plans"]
    finally:
        await db.dispose()
