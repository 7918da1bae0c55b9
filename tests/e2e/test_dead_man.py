"""Lockout protection: a change that cuts tikflow off is undone by the device-side dead-man switch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.simulator import SimulatorProcess, product_samples, start_simulator
from tests.support.stack import Stack, stack_with_router


@pytest.fixture(scope="module")
def router() -> AsyncIterator[SimulatorProcess]:
    process = start_simulator(export=product_samples()[0])
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def stack(router, temporal_server, tmp_path_factory) -> AsyncIterator[Stack]:
    async with stack_with_router(router, "core", temporal_address=temporal_server.address,
                                 var_dir=tmp_path_factory.mktemp("dead-man")) as running:
        yield running


async def test_lockout_change_is_restored_by_dead_man_switch(stack: Stack, router: SimulatorProcess):
    """Restricting the API service to another network cuts tikflow off; the armed job restores it."""
    before = router.state("r1", "/ip/service")
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.create.v1", {
            "description": "restrict the API service to the management VLAN",
            "changes": [{"device": "core", "path": "/ip/service", "action": "set",
                         "where": {"name": "api"}, "values": {"address": "192.0.2.0/24"}}],
            "rollout": {"dead_man_seconds": 10},
        })
        assert created["risk"]["level"] == "high"
        await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                         "plan_hash": created["plan_hash"]})
        deadline = time.monotonic() + 60
        armed = False
        while not armed:
            armed = any(job.get("name", "").startswith("tikflow-rollback-")
                        for job in router.state("r1", "/system/scheduler"))
            assert time.monotonic() < deadline, "the dead-man switch was never armed"
            await asyncio.sleep(0.1)

        deadline = time.monotonic() + 120
        while True:
            status = await mcp.call("plan.status.v1", {"plan_id": created["plan_id"]})
            if status["status"] in ("applied", "rolled_back", "failed", "needs_operator"):
                break
            assert time.monotonic() < deadline, f"plan still {status['status']}"
            await asyncio.sleep(0.5)

    assert status["status"] == "rolled_back", status
    assert "dead-man switch restored" in status["detail"]
    assert router.state("r1", "/ip/service") == before
    assert not [j for j in router.state("r1", "/system/scheduler")
                if j.get("name", "").startswith("tikflow-rollback-")]


async def test_reachable_change_disarms_dead_man_switch(stack: Stack, router: SimulatorProcess):
    """A high-risk change that keeps tikflow's access applies, and the restore job is removed."""
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.create.v1", {
            "description": "allow the API from loopback and the lab LAN only",
            "changes": [{"device": "core", "path": "/ip/service", "action": "set",
                         "where": {"name": "api"}, "values": {"address": "127.0.0.0/8,192.168.77.0/24"}}],
            "rollout": {"dead_man_seconds": 30},
        })
        await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                         "plan_hash": created["plan_hash"]})
        deadline = time.monotonic() + 60
        while True:
            status = await mcp.call("plan.status.v1", {"plan_id": created["plan_id"]})
            if status["status"] in ("applied", "rolled_back", "failed", "needs_operator"):
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
    assert status["status"] == "applied", status
    api = next(s for s in router.state("r1", "/ip/service") if s["name"] == "api")
    assert api["address"] == "127.0.0.0/8,192.168.77.0/24"
    assert not [j for j in router.state("r1", "/system/scheduler")
                if j.get("name", "").startswith("tikflow-rollback-")]


async def test_high_risk_change_without_scheduler_needs_override(stack: Stack, router: SimulatorProcess):
    """A device that cannot run scheduler jobs gets no high-risk change unless the plan accepts that."""
    from sqlalchemy import select

    from storage.db import Database
    from storage.models import Device

    db = Database(stack.settings.database.url)
    try:
        async with db.session() as session:
            device = await session.scalar(select(Device).where(Device.name == "core"))
            device.capabilities = {**device.capabilities, "scheduler": False}
    finally:
        await db.dispose()
    change = {"device": "core", "path": "/ip/service", "action": "set",
              "where": {"name": "www"}, "values": {"port": "8081"}}
    try:
        async with stack.mcp() as mcp:
            unguarded = await mcp.call("plan.create.v1", {"description": "no scheduler",
                                                        "changes": [change]})
            await mcp.call("plan.apply.v1", {"plan_id": unguarded["plan_id"],
                                             "plan_hash": unguarded["plan_hash"]})
            status = await _wait_for_end(mcp, unguarded["plan_id"])
            assert status["status"] == "failed"
            assert "cannot run scheduler jobs" in status["detail"]
            assert "allow_without_dead_man" in status["detail"]
            www = next(s for s in router.state("r1", "/ip/service") if s["name"] == "www")
            assert www["port"] == "80"

            accepted = await mcp.call("plan.create.v1", {
                "description": "no scheduler, risk accepted", "changes": [change],
                "rollout": {"allow_without_dead_man": True}})
            await mcp.call("plan.apply.v1", {"plan_id": accepted["plan_id"],
                                             "plan_hash": accepted["plan_hash"]})
            status = await _wait_for_end(mcp, accepted["plan_id"])
            assert status["status"] == "applied", status
            www = next(s for s in router.state("r1", "/ip/service") if s["name"] == "www")
            assert www["port"] == "8081"
    finally:
        db = Database(stack.settings.database.url)
        try:
            async with db.session() as session:
                device = await session.scalar(select(Device).where(Device.name == "core"))
                device.capabilities = {**device.capabilities, "scheduler": True}
        finally:
            await db.dispose()


async def _wait_for_end(mcp, plan_id: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        status = await mcp.call("plan.status.v1", {"plan_id": plan_id})
        if status["status"] in ("applied", "rolled_back", "failed", "needs_operator", "aborted"):
            return status
        assert time.monotonic() < deadline, f"plan still {status['status']}"
        await asyncio.sleep(0.3)
