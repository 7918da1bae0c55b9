"""Scale-out: two api and two worker processes share one PostgreSQL database and one Temporal.

An 8-router rollout in batches of 4 completes with its activities spread over both workers
(read from the workflow history's ActivityTaskStarted identities and from each worker's own
log), while MCP calls alternate between the two api processes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from itertools import cycle

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from inventory.devices import Inventory, enrol_device, load_key_ring
from storage.db import Database
from tests.support.simulator import SimulatorProcess, product_samples, start_simulator
from tests.support.stack import McpSession, Stack, start_stack

ROUTERS = 8
TERMINAL = {"applied", "rolled_back", "failed", "needs_operator", "aborted"}


@pytest.fixture(scope="module")
def routers() -> AsyncIterator[SimulatorProcess]:
    process = start_simulator(devices=ROUTERS, export=product_samples()[0])
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def stack(routers, temporal_server, postgres_server, tmp_path_factory) -> AsyncIterator[Stack]:
    var_dir = tmp_path_factory.mktemp("scale-out")
    url = postgres_server.create_database()
    # Two activity slots per worker: a batch of four parallel steps cannot fit on one worker,
    # so the spread below does not depend on which poller Temporal happens to pick.
    running = start_stack(database_url=url, temporal_address=temporal_server.address,
                          var_dir=var_dir, workers=2, apis=2,
                          extra_env={"TIKFLOW_WORKER__MAX_CONCURRENT_ACTIVITIES": "2"})
    db = Database(url)
    inventory = Inventory(db, load_key_ring(running.settings))
    try:
        for endpoint in routers.endpoints:
            host, _, port = endpoint["api"].rpartition(":")
            await enrol_device(inventory, running.settings, name=endpoint["name"], address=host,
                               port=int(port), transport="api", environment="lab",
                               username=endpoint["service_username"],
                               password=endpoint["service_password"], tags=["scale"])
        yield running
    finally:
        await db.dispose()
        running.stop()


def worker_identities(stack: Stack) -> dict[str, str]:
    """Map each worker's Temporal identity (the SDK default, pid@host) to its process name."""
    host = socket.gethostname()
    return {f"{process.pid}@{host}": name for name, process in stack.supervisor.processes
            if name.startswith("worker")}


def applied_lines(stack: Stack, worker: str, plan_id: str) -> int:
    """Count the ``plan step applied`` log lines one worker wrote for the plan."""
    count = 0
    for line in (stack.log_dir / f"{worker}.log").read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "plan step applied" and event.get("plan_id") == plan_id:
            count += 1
    return count


async def test_rollout_spreads_over_workers_and_apis(stack: Stack, routers: SimulatorProcess):
    """Each worker runs part of an 8-router rollout; both apis serve every kind of call."""
    assert len(stack.api_urls) == 2
    for index in range(1, ROUTERS + 1):
        routers.set_faults(f"r{index}", {"latency": 0.05})
    try:
        async with stack.mcp(api_url=stack.api_urls[0]) as first, \
                stack.mcp(api_url=stack.api_urls[1]) as second:
            sessions: list[McpSession] = [first, second]
            created = await first.call("plan.create.v1", {
                "description": "scale-out rollout",
                "changes": [{"path": "/ip/address", "action": "add",
                             "values": {"address": "10.250.0.1/24", "interface": "bridge-lan"}}],
                "tag": "scale",
                "rollout": {"canary": 0, "batch_size": 4, "max_parallel": 4},
            })
            assert len(created["diff"]) == ROUTERS
            await second.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                                "plan_hash": created["plan_hash"]})

            answered = {0: 0, 1: 0}
            deadline = time.monotonic() + 180
            for index, session in cycle(enumerate(sessions)):
                status = await session.call("plan.status.v1", {"plan_id": created["plan_id"]})
                devices = await session.call("device.list.v1", {"environment": "lab"})
                assert devices["count"] == ROUTERS
                answered[index] += 1
                if status["status"] in TERMINAL:
                    break
                assert time.monotonic() < deadline, f"rollout still {status['status']}"
                await asyncio.sleep(0.2)
    finally:
        for index in range(1, ROUTERS + 1):
            routers.clear_faults(f"r{index}")

    assert status["status"] == "applied", status
    assert [len(batch["device_ids"]) for batch in status["batches"]] == [4, 4]
    assert answered[0] >= 1
    assert answered[1] >= 1
    for index in range(1, ROUTERS + 1):
        addresses = [row["address"] for row in routers.state(f"r{index}", "/ip/address")]
        assert "10.250.0.1/24" in addresses, f"r{index}"

    client = await Client.connect(stack.settings.temporal.address,
                                  data_converter=pydantic_data_converter)
    history = await client.get_workflow_handle(status["workflow_id"]).fetch_history()
    started_by = [event.activity_task_started_event_attributes.identity for event in history.events
                  if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    identities = worker_identities(stack)
    assert len(identities) == 2
    per_worker = {name: started_by.count(identity) for identity, name in identities.items()}
    assert sum(per_worker.values()) == len(started_by)
    assert all(count > 0 for count in per_worker.values()), per_worker

    logged = {name: applied_lines(stack, name, created["plan_id"]) for name in identities.values()}
    assert sum(logged.values()) == ROUTERS
    assert all(count > 0 for count in logged.values()), logged
