"""A worker killed in the middle of a step: the restarted worker finishes without applying twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.simulator import SimulatorProcess, product_samples, start_simulator
from tests.support.stack import Stack, stack_with_router

COMMENTS = [f"crash-test-{n}" for n in range(1, 5)]


@pytest.fixture(scope="module")
def router() -> AsyncIterator[SimulatorProcess]:
    process = start_simulator(export=product_samples()[0])
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def stack(router, temporal_server, tmp_path_factory) -> AsyncIterator[Stack]:
    async with stack_with_router(router, "edge", temporal_address=temporal_server.address,
                                 var_dir=tmp_path_factory.mktemp("crash")) as running:
        yield running


async def test_worker_sigkill_mid_apply_applies_each_step_once(stack: Stack, router: SimulatorProcess):
    """SIGKILL during step 2, restart: the plan ends applied and every rule exists exactly once."""
    changes = [{"device": "edge", "path": "/ip/firewall/filter", "action": "add",
                "values": {"chain": "forward", "action": "accept", "protocol": "tcp",
                           "dst-port": str(9000 + n), "comment": comment}}
               for n, comment in enumerate(COMMENTS)]
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.create.v1", {"description": "survive a crash", "changes": changes})
        # Slow replies keep each step on the wire long enough to kill the worker inside one.
        router.set_faults("r1", {"latency": 0.6})
        try:
            await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                             "plan_hash": created["plan_hash"]})
            deadline = time.monotonic() + 60
            while True:
                status = await mcp.call("plan.status.v1", {"plan_id": created["plan_id"]})
                if status["steps"][1]["status"] == "applying":
                    break
                assert time.monotonic() < deadline, f"step 2 never started: {status}"
                await asyncio.sleep(0.05)
            stack.kill_worker("worker0")
            stack.start_worker("worker1")

            deadline = time.monotonic() + 120
            while status["status"] not in ("applied", "rolled_back", "failed", "needs_operator"):
                assert time.monotonic() < deadline, f"plan did not finish after the restart: {status}"
                await asyncio.sleep(0.3)
                status = await mcp.call("plan.status.v1", {"plan_id": created["plan_id"]})
        finally:
            router.clear_faults("r1")

    assert status["status"] == "applied", status
    rules = router.state("r1", "/ip/firewall/filter")
    for comment in COMMENTS:
        assert [r.get("comment") for r in rules].count(comment) == 1, comment
