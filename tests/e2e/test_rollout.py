"""Production safety end to end: batches with health gates, four-eyes approval, incident pause.

A 20-router simulated fleet (one `tikflow simulate` process) behind the real api and worker
processes and the Temporal dev server; SQLite keeps this module quick, the plan/apply module
covers both databases.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.breakglass import create_account
from inventory.devices import Inventory, enrol_device, load_key_ring
from storage.db import Database
from tests.support.simulator import SimulatorProcess, product_samples, start_simulator
from tests.support.stack import McpSession, Stack, start_stack

FLEET = 20
TERMINAL = {"applied", "rolled_back", "failed", "needs_operator", "aborted"}


@pytest.fixture(scope="module")
def fleet() -> AsyncIterator[SimulatorProcess]:
    process = start_simulator(devices=FLEET + 1, export=product_samples()[0])
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def stack(fleet, temporal_server, tmp_path_factory) -> AsyncIterator[Stack]:
    var_dir = tmp_path_factory.mktemp("rollout")
    url = f"sqlite+aiosqlite:///{var_dir}/tikflow.db"
    running = start_stack(database_url=url, temporal_address=temporal_server.address, var_dir=var_dir)
    db = Database(url)
    inventory = Inventory(db, load_key_ring(running.settings))
    try:
        for index, endpoint in enumerate(fleet.endpoints):
            host, _, port = endpoint["api"].rpartition(":")
            prod = index == FLEET
            await enrol_device(inventory, running.settings, name=endpoint["name"], address=host,
                               port=int(port), transport="api",
                               environment="prod" if prod else "lab",
                               username=endpoint["service_username"],
                               password=endpoint["service_password"],
                               tags=["prod-edge"] if prod else ["fleet"])
        running.approver_token = await create_account(db, name="bob", role="approver",
                                                      created_by="test")
        yield running
    finally:
        await db.dispose()
        running.stop()


def admin(stack: Stack, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or stack.token}"}
    return httpx.request(method, f"{stack.api_url}/api/v1{path}", headers=headers, timeout=30, **kwargs)


async def wait_for(mcp: McpSession, plan_id: str, predicate, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = await mcp.call("plan.status.v1", {"plan_id": plan_id})
        if predicate(status):
            return status
        assert time.monotonic() < deadline, f"plan {plan_id}: condition not met, last {status}"
        await asyncio.sleep(0.3)


def has_address(fleet: SimulatorProcess, name: str, address: str) -> bool:
    return address in [row["address"] for row in fleet.state(name, "/ip/address")]


def fleet_changes(address: str) -> list[dict]:
    return [{"device": f"r{i}", "path": "/ip/address", "action": "add",
             "values": {"address": address, "interface": "bridge-lan"}}
            for i in range(1, FLEET + 1)]


async def test_failed_health_gate_stops_rollout(stack: Stack, fleet: SimulatorProcess):
    """Canary and batch 1 stay applied, the batch with the failing device rolls back, the rest never run."""
    address = "10.240.0.1/24"
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.create.v1", {
            "description": "roll a subnet over the fleet",
            "changes": fleet_changes(address),
            "rollout": {"canary": 1, "batch_size": 5, "on_failure": "rollback_batch"},
        })
        assert len(created["diff"]) == FLEET
        # r7's first print during apply is the preflight snapshot; the second is its health gate.
        fleet.set_faults("r7", {"traps": [{"command": "/ip/address/print", "nth": 2,
                                           "message": "failure: health probe rejected"}]})
        try:
            await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                             "plan_hash": created["plan_hash"]})
            final = await wait_for(mcp, created["plan_id"], lambda s: s["status"] in TERMINAL)
        finally:
            fleet.clear_faults("r7")

    assert final["status"] == "failed", final
    assert "batch 2 failed" in final["detail"]
    assert "health gate" in final["detail"]
    assert [b["status"] for b in final["batches"]] == ["applied", "applied", "failed", "pending", "pending"]
    applied = [f"r{i}" for i in range(1, FLEET + 1) if has_address(fleet, f"r{i}", address)]
    assert applied == ["r1", "r2", "r3", "r4", "r5", "r6"]


async def test_prod_approval_needs_second_person(stack: Stack, fleet: SimulatorProcess):
    """In prod the author's approval is rejected and another approver's is accepted."""
    prod_device = f"r{FLEET + 1}"
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.create.v1", {
            "description": "prod change under four-eyes",
            "changes": [{"device": prod_device, "path": "/ip/address", "action": "add",
                         "values": {"address": "10.241.0.1/24", "interface": "bridge-lan"}}],
        })
        assert created["approval"] == "four_eyes"
        started = await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                                   "plan_hash": created["plan_hash"]})
        assert started["status"] == "awaiting_approval"
        await wait_for(mcp, created["plan_id"], lambda s: s["status"] == "awaiting_approval")

        own = admin(stack, "POST", f"/plans/{created['plan_id']}/approve",
                    json={"plan_hash": created["plan_hash"]})
        assert own.status_code == 403, own.text
        assert "author of a plan cannot approve it" in own.json()["detail"]

        stale = admin(stack, "POST", f"/plans/{created['plan_id']}/approve",
                      token=stack.approver_token, json={"plan_hash": "0" * 64})
        assert stale.status_code == 403
        assert "plan_hash does not match" in stale.json()["detail"]
        assert not has_address(fleet, prod_device, "10.241.0.1/24")

        other = admin(stack, "POST", f"/plans/{created['plan_id']}/approve",
                      token=stack.approver_token, json={"plan_hash": created["plan_hash"]})
        assert other.status_code == 200, other.text
        assert other.json()["approved_by"] == ["bob"]
        final = await wait_for(mcp, created["plan_id"], lambda s: s["status"] in TERMINAL)
    assert final["status"] == "applied"
    assert final["approved_by"] == ["bob"]
    assert has_address(fleet, prod_device, "10.241.0.1/24")


async def test_incident_pause_holds_rollout_until_resume(stack: Stack, fleet: SimulatorProcess):
    """The pause stops a rollout at the next step boundary and refuses new applies; resume finishes it."""
    address = "10.242.0.1/24"
    for i in range(1, FLEET + 1):
        fleet.set_faults(f"r{i}", {"latency": 0.05})
    try:
        async with stack.mcp() as mcp:
            created = await mcp.call("plan.create.v1", {
                "description": "rollout held by an incident",
                "changes": fleet_changes(address),
                "rollout": {"canary": 1, "batch_size": 5},
            })
            other = await mcp.call("plan.create.v1", {
                "description": "a plan applied during the incident",
                "changes": [{"device": "r1", "path": "/ip/firewall/filter", "action": "add",
                             "values": {"chain": "forward", "action": "accept", "protocol": "tcp",
                                        "dst-port": "7001"}}],
            })
            await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                             "plan_hash": created["plan_hash"]})
            await wait_for(mcp, created["plan_id"],
                           lambda s: s["batches"] and s["batches"][0]["status"] == "applied")

            paused = admin(stack, "POST", "/incident/pause", json={"reason": "test incident"})
            assert paused.status_code == 200, paused.text
            held = await wait_for(mcp, created["plan_id"], lambda s: s["paused"], timeout=30)
            count = sum(has_address(fleet, f"r{i}", address) for i in range(1, FLEET + 1))
            assert count < FLEET
            assert "pending" in [b["status"] for b in held["batches"]]

            rejected = await mcp.error("plan.apply.v1", {"plan_id": other["plan_id"],
                                                        "plan_hash": other["plan_hash"]})
            assert "paused for an incident" in rejected
            devices = await mcp.call("device.list.v1", {})
            assert devices["count"] == FLEET + 1
            ready = httpx.get(f"{stack.api_url}/readyz", timeout=10).json()
            assert ready["incident"]["paused"] is True

            # Held means held: nothing more lands while paused.
            await asyncio.sleep(2)
            assert sum(has_address(fleet, f"r{i}", address) for i in range(1, FLEET + 1)) == count

            resumed = admin(stack, "POST", "/incident/resume", json={"reason": "resolved"})
            assert resumed.status_code == 200, resumed.text
            final = await wait_for(mcp, created["plan_id"], lambda s: s["status"] in TERMINAL)
    finally:
        for i in range(1, FLEET + 1):
            fleet.clear_faults(f"r{i}")
    assert final["status"] == "applied", final
    assert all(has_address(fleet, f"r{i}", address) for i in range(1, FLEET + 1))


async def test_disabled_tool_rejected_until_enabled(stack: Stack):
    """An operator switches a tool off for every caller, and back on."""
    response = admin(stack, "POST", "/incident/tools/device.list.v1/disable", json={"reason": "noisy"})
    assert response.status_code == 200, response.text
    try:
        async with stack.mcp() as mcp:
            text = await mcp.error("device.list.v1", {})
            assert "switched off" in text
            status = admin(stack, "GET", "/incident").json()
            assert status["disabled_tools"] == ["device.list.v1"]
            assert status["tool_switches"][0]["changed_by"] == "dev-admin"
    finally:
        admin(stack, "POST", "/incident/tools/device.list.v1/enable")
    async with stack.mcp() as mcp:
        assert (await mcp.call("device.list.v1", {}))["count"] == FLEET + 1


async def test_disabled_tier_switches_off_every_tool_in_it(stack: Stack):
    """Switching the plan tier off refuses plan tools while read tools keep working."""
    response = admin(stack, "POST", "/incident/tools/tier:plan/disable", json={"reason": "freeze"})
    assert response.status_code == 200, response.text
    assert response.json()["disabled_tiers"] == ["plan"]
    try:
        async with stack.mcp() as mcp:
            text = await mcp.error("plan.create.v1", {"description": "frozen", "changes": [
                {"device": "r1", "path": "/ip/address", "action": "add",
                 "values": {"address": "10.243.0.1/24", "interface": "bridge-lan"}}]})
            assert "plan-tier tools are switched off" in text
            assert (await mcp.call("device.list.v1", {}))["count"] == FLEET + 1
    finally:
        admin(stack, "POST", "/incident/tools/tier:plan/enable")
    bad = admin(stack, "POST", "/incident/tools/tier:everything/disable")
    assert bad.status_code == 400
    assert "unknown risk tier" in bad.json()["detail"]


async def test_recorded_histories_replay_on_current_code(stack: Stack):
    """Every PlanApply history this module produced replays without nondeterminism."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer

    from workflows.plan_apply import PlanApplyWorkflow

    client = await Client.connect(stack.settings.temporal.address, data_converter=pydantic_data_converter)
    query = f'WorkflowType = "PlanApply" AND TaskQueue = "{stack.settings.temporal.task_queue}"'
    histories = [await client.get_workflow_handle(w.id, run_id=w.run_id).fetch_history()
                 async for w in client.list_workflows(query)]
    assert len(histories) >= 3
    replayer = Replayer(workflows=[PlanApplyWorkflow], data_converter=pydantic_data_converter)
    failures = {}
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[history.workflow_id] = str(result.replay_failure)
    assert failures == {}
    record_dir = os.environ.get("TIKFLOW_RECORD_HISTORIES")
    if record_dir:
        for history in histories:
            path = Path(record_dir) / f"{history.workflow_id.replace(':', '_')}.json"
            path.write_text(history.to_json())
