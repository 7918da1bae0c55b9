"""Device lifecycle through the admin API: register, update, rotate, decommission, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from api.app import create_app
from api.security import Principal
from storage.migrate import upgrade
from storage.models import AuditEvent, Credential, Device, Snapshot
from tests.support.lifecycle import Stack, lifecycle_stack, serve
from tikflow.devstack import free_port
from tikflow.settings import Settings


@pytest.fixture
async def stack(database_url: str, temporal_server, tmp_path) -> AsyncIterator[Stack]:
    async with lifecycle_stack(database_url, temporal_server.address, tmp_path) as running:
        yield running


async def credentials_of(stack: Stack, device_id: str) -> list[Credential]:
    async with stack.db.session() as session:
        return list((await session.scalars(select(Credential).where(
            Credential.device_id == device_id).order_by(Credential.generation))).all())


async def count(stack: Stack, model, **where) -> int:
    async with stack.db.session() as session:
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return await session.scalar(query)


async def test_register_reads_facts_and_marks_device_active(stack: Stack) -> None:
    """Registration logs in, stores identity, version and transports, snapshots, and activates."""
    started = await stack.register("core-1", tags=["edge", "lab"], capabilities={"bgp": True})
    assert started["workflow_id"] == f"device-register:{started['device_id']}"
    assert started["device"]["status"] == "pending"

    result = await stack.wait(started["device_id"], started["workflow_id"])

    assert result["status"] == "active"
    device = (await stack.http.get("/api/v1/devices/core-1")).json()
    assert device["status"] == "active"
    assert device["identity"]
    assert device["version"].startswith(stack.fleet.device("r1").version)
    assert device["facts"]["transports"]["api"] == "open"
    assert device["facts"]["uptime"]
    assert device["tags"] == ["edge", "lab"]
    assert device["snapshots"] == 1
    assert device["credentials"] == [
        {"username": "tikflow", "generation": 1, "state": "active",
         "created_at": device["credentials"][0]["created_at"]}]
    async with stack.db.session() as session:
        snapshot = await session.scalar(select(Snapshot).where(Snapshot.device_id == device["id"]))
    assert snapshot.reason == "register"
    assert "by RouterOS" in snapshot.export_text
    assert snapshot.sha256 and len(snapshot.sha256) == 64


async def test_register_with_wrong_password_stays_pending_with_reason(stack: Stack) -> None:
    """A rejected login leaves the device pending with a reason an operator can act on."""
    started = await stack.register("core-2", password="not-the-password")

    result = await stack.wait(started["device_id"], started["workflow_id"])

    assert result["status"] == "pending"
    device = (await stack.http.get(f"/api/v1/devices/{started['device_id']}")).json()
    assert device["status"] == "pending"
    assert "password is wrong" in device["status_reason"]
    assert "'api'" in device["status_reason"]
    assert "not-the-password" not in device["status_reason"]


async def test_register_unreachable_device_stays_pending(stack: Stack) -> None:
    """A device that does not respond stays pending with 'unreachable' and the service to check."""
    await stack.fleet.device("r2").stop()
    host, port = stack.endpoint("r2")

    started = await stack.register("gone-1", device="r2")
    result = await stack.wait(started["device_id"], started["workflow_id"])

    assert result["status"] == "pending"
    assert f"{host}:{port} is unreachable" in result["detail"]
    assert "/ip service api" in result["detail"]


async def test_register_rejects_duplicate_address_and_name(stack: Stack) -> None:
    """A second registration of the same address and port, or name, is refused with 409."""
    started = await stack.register("dup-1")
    host, port = stack.endpoint("r1")

    again = await stack.http.post("/api/v1/devices", json={
        "name": "dup-2", "address": host, "port": port, "transport": "api",
        "environment": "lab", "username": "tikflow", "password": "x"})
    same_name = await stack.http.post("/api/v1/devices", json={
        "name": "dup-1", "address": "192.0.2.10", "transport": "api",
        "environment": "lab", "username": "tikflow", "password": "x"})

    assert again.status_code == 409
    assert "already registered as 'dup-1'" in again.json()["detail"]
    assert same_name.status_code == 409
    assert "already taken" in same_name.json()["detail"]
    assert await count(stack, Device) == 1
    assert len(await credentials_of(stack, started["device_id"])) == 1


async def test_register_rejects_bad_input_without_echoing_password(stack: Stack) -> None:
    """Invalid environment or missing fields get 422 naming the field; the password is not echoed."""
    bad_env = await stack.http.post("/api/v1/devices", json={
        "name": "x-1", "address": "192.0.2.1", "transport": "api", "environment": "dev",
        "username": "u", "password": "hunter2-secret"})
    missing = await stack.http.post("/api/v1/devices", json={
        "name": "x-1", "address": "192.0.2.1", "username": "u", "password": "hunter2-secret"})
    both = await stack.http.post("/api/v1/devices", json={
        "name": "x-1", "address": "192.0.2.1", "transport": "api", "environment": "lab",
        "username": "u", "password": "hunter2-secret", "password_ref": "env:X"})
    bad_ref = await stack.http.post("/api/v1/devices", json={
        "name": "x-1", "address": "192.0.2.1", "transport": "api", "environment": "lab",
        "username": "u", "password_ref": "env:TIKFLOW_TEST_NOT_SET"})

    assert bad_env.status_code == 422
    assert "environment" in bad_env.text
    assert missing.status_code == 422
    assert "transport" in missing.text
    assert both.status_code == 422
    assert bad_ref.status_code == 422
    assert "is not set" in bad_ref.text
    for response in (bad_env, missing, both):
        assert "hunter2-secret" not in response.text
    assert await count(stack, Device) == 0


async def test_register_with_password_ref_resolves_env(stack: Stack, monkeypatch) -> None:
    """A password_ref is resolved by the api and the device registers with it."""
    monkeypatch.setenv("TIKFLOW_TEST_ROUTER_PASSWORD", stack.fleet.service_password)

    started = await stack.register("ref-1", password=None,
                                   password_ref="env:TIKFLOW_TEST_ROUTER_PASSWORD")
    result = await stack.wait(started["device_id"], started["workflow_id"])

    assert result["status"] == "active"


async def test_unknown_device_gets_404_for_every_operation(stack: Stack) -> None:
    """Show, update, rotate and decommission of an unknown device return 404 and change nothing."""
    responses = [
        await stack.http.get("/api/v1/devices/nope"),
        await stack.http.patch("/api/v1/devices/nope", json={"tags": ["a"]}),
        await stack.http.post("/api/v1/devices/nope/rotate-credentials", json={}),
        await stack.http.post("/api/v1/devices/nope/decommission", json={}),
    ]

    for response in responses:
        assert response.status_code == 404
        assert "no device with id or name 'nope'" in response.json()["detail"]
    async with stack.db.session() as session:
        actions = (await session.scalars(select(AuditEvent.action))).all()
    assert [action for action in actions if action.startswith("device.")] == []


async def test_update_metadata_audits_before_and_after(stack: Stack) -> None:
    """Name, tags, environment and flags change; the audit event stores before and after."""
    started = await stack.register("meta-1", tags=["a"])
    await stack.wait(started["device_id"], started["workflow_id"])

    response = await stack.http.patch(f"/api/v1/devices/{started['device_id']}", json={
        "name": "meta-2", "tags": ["b"], "environment": "staging", "capabilities": {"ipv6": False}})
    rejected = await stack.http.patch(f"/api/v1/devices/{started['device_id']}",
                                      json={"environment": "qa"})

    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["name"], updated["tags"], updated["environment"]) == ("meta-2", ["b"], "staging")
    assert updated["capabilities"] == {"ipv6": False}
    assert rejected.status_code == 422
    async with stack.db.session() as session:
        event = await session.scalar(select(AuditEvent).where(AuditEvent.action == "device.update"))
    assert event.arguments["before"] == {"name": "meta-1", "tags": ["a"], "environment": "lab",
                                         "capabilities": {}}
    assert event.arguments["after"]["environment"] == "staging"
    assert event.actor == "dev-admin"
    async with stack.db.session() as session:
        generic = (await session.scalars(select(AuditEvent.action).where(
            AuditEvent.action.like("api:PATCH %")))).all()
    # The accepted PATCH wrote device.update in place of the middleware's generic event, so the
    # only generic one is the rejected request's, which never reached the route.
    assert generic == ["api:PATCH /api/v1/devices/{device}"]


async def test_rotate_same_user_replaces_password_on_router(stack: Stack) -> None:
    """Same-user rotation sets a new password, proves it, and retires the old credential."""
    started = await stack.register("rot-1")
    await stack.wait(started["device_id"], started["workflow_id"])

    response = await stack.http.post(f"/api/v1/devices/{started['device_id']}/rotate-credentials",
                                     json={"policy": "same-user"})
    assert response.status_code == 202, response.text
    rotation = response.json()
    result = await stack.wait(started["device_id"], rotation["workflow_id"])

    assert rotation["workflow_id"] == f"credential-rotate:{started['device_id']}:2"
    assert result["status"] == "rotated"
    credentials = await credentials_of(stack, started["device_id"])
    assert [(c.generation, c.state) for c in credentials] == [(1, "retired"), (2, "active")]
    router_password = stack.fleet.device("r1").state.passwords["tikflow"]
    assert router_password != stack.fleet.service_password
    assert stack.fleet.device("r1").state.authenticate("tikflow", stack.fleet.service_password) is None


async def test_rotate_new_user_creates_account_and_disables_old(stack: Stack) -> None:
    """New-user rotation adds tikflow-g2 with the old group and disables the old account."""
    started = await stack.register("rot-2")
    await stack.wait(started["device_id"], started["workflow_id"])

    rotation = (await stack.http.post(f"/api/v1/devices/{started['device_id']}/rotate-credentials",
                                      json={"policy": "new-user"})).json()
    result = await stack.wait(started["device_id"], rotation["workflow_id"])

    assert result["status"] == "rotated", result
    state = stack.fleet.device("r1").state
    users = state.table("/user")
    assert users.find("tikflow-g2")["group"] == users.find("tikflow")["group"]
    assert users.find("tikflow")["disabled"] == "true"
    credentials = await credentials_of(stack, started["device_id"])
    assert [(c.username, c.state) for c in credentials] == [("tikflow", "retired"),
                                                           ("tikflow-g2", "active")]


async def test_rotate_refused_for_pending_device(stack: Stack) -> None:
    """Only active devices rotate; a pending one gets 409 and no workflow."""
    started = await stack.register("pend-1", password="wrong")
    await stack.wait(started["device_id"], started["workflow_id"])

    response = await stack.http.post(f"/api/v1/devices/{started['device_id']}/rotate-credentials")

    assert response.status_code == 409
    assert "only active devices" in response.json()["detail"]


async def test_decommission_marks_inactive_and_keeps_history(stack: Stack) -> None:
    """Decommission marks the device inactive, removes the account, keeps snapshots and audit."""
    started = await stack.register("dec-1")
    await stack.wait(started["device_id"], started["workflow_id"])

    response = await stack.http.post(f"/api/v1/devices/{started['device_id']}/decommission",
                                     json={"remove_service_account": True})
    assert response.status_code == 202, response.text
    result = await stack.wait(started["device_id"], response.json()["workflow_id"])
    again = await stack.http.post(f"/api/v1/devices/{started['device_id']}/decommission")

    assert result["status"] == "inactive"
    assert "removed the account 'tikflow'" in result["detail"]
    device = (await stack.http.get(f"/api/v1/devices/{started['device_id']}")).json()
    assert device["status"] == "inactive"
    assert device["snapshots"] == 2
    assert [c["state"] for c in device["credentials"]] == ["retired"]
    assert stack.fleet.device("r1").state.table("/user").find("tikflow") is None
    assert again.status_code == 409
    plan = await stack.http.post("/api/v1/plans", json={
        "description": "change a decommissioned device",
        "changes": [{"device": "dec-1", "path": "/system/identity", "action": "set",
                     "values": {"name": "x"}}]})
    assert plan.status_code == 422
    assert "only active devices" in plan.json()["detail"]
    assert await count(stack, AuditEvent, action="device.decommission") == 2
    operations = (await stack.http.get(f"/api/v1/devices/{started['device_id']}/operations")).json()
    assert [op["type"] for op in operations["items"]] == ["DeviceRegister", "DeviceDecommission"]


async def test_register_without_temporal_returns_503_and_stays_pending(database_url: str, tmp_path) -> None:
    """When Temporal is down, registration returns 503 and the device keeps the reason."""
    await asyncio.to_thread(upgrade, database_url)
    token = "t" * 32
    settings = Settings(dev_token=token, master_key=Fernet.generate_key().decode(), var_dir=tmp_path,
                        database={"url": database_url},
                        temporal={"address": f"127.0.0.1:{free_port()}"})
    server, task, port = await serve(create_app(settings))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            response = await http.post("/api/v1/devices", json={
                "name": "no-temporal", "address": "192.0.2.7", "transport": "api",
                "environment": "lab", "username": "u", "password": "pw-not-shown"})
            device = (await http.get("/api/v1/devices/no-temporal")).json()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)

    assert response.status_code == 503
    assert "did not start because Temporal" in response.json()["detail"]
    assert "pw-not-shown" not in response.text
    assert device["status"] == "pending"
    assert "did not start" in device["status_reason"]


async def test_register_concurrent_duplicates_store_one_device(stack: Stack) -> None:
    """Concurrent registrations of one address store one device; the rest get 409, never 500."""
    host, port = stack.endpoint("r1")

    responses = await asyncio.gather(*(stack.http.post("/api/v1/devices", json={
        "name": f"race-{n}", "address": host, "port": port, "transport": "api",
        "environment": "lab", "username": "tikflow", "password": stack.fleet.service_password})
        for n in range(5)))

    codes = sorted(response.status_code for response in responses)
    assert codes == [202, 409, 409, 409, 409]
    assert await count(stack, Device) == 1
    started = next(response.json() for response in responses if response.status_code == 202)
    await stack.wait(started["device_id"], started["workflow_id"])


async def test_register_user_without_api_policy_stays_pending(stack: Stack) -> None:
    """A user whose group lacks the api policy is rejected; the reason names the policy."""
    state = stack.fleet.device("r1").state
    state.create_item("/user/group", {"name": "no-api", "policy": "read,write,ssh,test"})
    state.add_user("noapi", "no-api", "noapi-password")

    started = await stack.register("nopolicy-1", username="noapi", password="noapi-password")
    result = await stack.wait(started["device_id"], started["workflow_id"])

    assert result["status"] == "pending"
    assert "lacks the 'api'" in result["detail"]


async def test_register_api_ssl_checks_pinned_fingerprint(stack: Stack) -> None:
    """api-ssl registration succeeds with the right fingerprint and stays pending on a mismatch."""
    wrong = await stack.register("tls-wrong", device="r1", transport_name="api-ssl",
                                 transport="api-ssl", tls_fingerprint="ab" * 32)
    right = await stack.register("tls-right", device="r2", transport_name="api-ssl",
                                 transport="api-ssl", tls_fingerprint=stack.fleet.fingerprint)

    wrong_result = await stack.wait(wrong["device_id"], wrong["workflow_id"])
    right_result = await stack.wait(right["device_id"], right["workflow_id"])

    assert wrong_result["status"] == "pending"
    assert "TLS verification failed" in wrong_result["detail"]
    assert "fingerprint mismatch" in wrong_result["detail"]
    assert right_result["status"] == "active"


READER, OPERATOR = "reader-token-" + "r" * 20, "operator-token-" + "o" * 20


@pytest.fixture
async def role_stack(database_url: str, temporal_server, tmp_path) -> AsyncIterator[Stack]:
    principals = {
        READER: Principal(subject="rita", issuer="test", roles=frozenset({"reader"})),
        OPERATOR: Principal(subject="otto", issuer="test", roles=frozenset({"operator"})),
    }
    async with lifecycle_stack(database_url, temporal_server.address, tmp_path, devices=1,
                               principals=principals) as running:
        yield running


async def test_roles_gate_each_device_operation(role_stack: Stack) -> None:
    """reader reads; operator registers, retags and rotates; environment, flags and decommission need admin."""
    stack = role_stack
    reader = {"Authorization": f"Bearer {READER}"}
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    host, port = stack.endpoint("r1")
    body = {"name": "roles-1", "address": host, "port": port, "transport": "api",
            "environment": "lab", "username": "tikflow", "password": stack.fleet.service_password}

    reader_register = await stack.http.post("/api/v1/devices", json=body, headers=reader)
    operator_register = await stack.http.post("/api/v1/devices", json=body, headers=operator)
    started = operator_register.json()
    await stack.wait(started["device_id"], started["workflow_id"])
    device = f"/api/v1/devices/{started['device_id']}"
    reader_list = await stack.http.get("/api/v1/devices", headers=reader)
    reader_show = await stack.http.get(device, headers=reader)
    reader_tags = await stack.http.patch(device, json={"tags": ["x"]}, headers=reader)
    operator_tags = await stack.http.patch(device, json={"tags": ["x"]}, headers=operator)
    operator_env = await stack.http.patch(device, json={"environment": "prod"}, headers=operator)
    operator_flags = await stack.http.patch(device, json={"capabilities": {"a": True}}, headers=operator)
    reader_rotate = await stack.http.post(f"{device}/rotate-credentials", headers=reader)
    operator_rotate = await stack.http.post(f"{device}/rotate-credentials", headers=operator)
    await stack.wait(started["device_id"], operator_rotate.json()["workflow_id"])
    operator_decommission = await stack.http.post(f"{device}/decommission", headers=operator)
    admin_env = await stack.http.patch(device, json={"environment": "prod"})

    assert reader_register.status_code == 403
    assert operator_register.status_code == 202
    assert reader_list.status_code == 200
    assert reader_show.status_code == 200
    assert reader_tags.status_code == 403
    assert operator_tags.status_code == 200
    assert operator_env.status_code == 403
    assert "needs the admin role" in operator_env.json()["detail"]
    assert operator_flags.status_code == 403
    assert reader_rotate.status_code == 403
    assert operator_rotate.status_code == 202
    assert operator_decommission.status_code == 403
    assert admin_env.status_code == 200
    async with stack.db.session() as session:
        actors = (await session.scalars(select(AuditEvent.actor).where(
            AuditEvent.action == "device.update"))).all()
    assert sorted(actors) == ["dev-admin", "otto"]
