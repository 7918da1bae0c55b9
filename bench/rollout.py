"""Rollout wall time against the floor set by device round trips, delay and concurrency.

A plan adds ``CHANGES_PER_DEVICE`` addresses to every device of the fleet, through MCP, with
the simulator delaying every reply. The wall time runs from the ``plan.apply.v1`` call until
the PlanApply workflow returns. The fleet process counts the replies the devices sent during
the apply, which checks the round-trip count the floor is computed from.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.environment import Environment
from bench.stats import RolloutShape, ratio, rollout_floor
from workflows.plan_apply import workflow_id_for

CHANGES_PER_DEVICE = 5
# The settings' default rollout policy, spelled out so the floor uses the same numbers.
CANARY = 1
BATCH_SIZE = 10
MAX_PARALLEL = 10
# Preflight prints every table the planner read for a device: /ip/address, and /interface
# because an address names its interface.
PREFLIGHT_PRINTS = 2
# ``max_concurrent_activities`` of the worker in workers/main.py.
WORKER_ACTIVITY_SLOTS = 50
APPLY_TIMEOUT = 1800.0


def plan_changes(device_names: list[str]) -> list[dict[str, Any]]:
    """Return ``CHANGES_PER_DEVICE`` address adds on ``bridge-lan`` for each device."""
    return [
        {"device": name, "path": "/ip/address", "action": "add",
         "values": {"address": f"10.250.{index}.1/24", "interface": "bridge-lan"}}
        for name in device_names
        for index in range(CHANGES_PER_DEVICE)
    ]


async def measure_rollout(environment: Environment, delay: float) -> dict[str, Any]:
    """Apply the plan to every device of the environment's fleet and compare with the floor.

    Raises:
        RuntimeError: The plan did not end ``applied``.
    """
    fleet, stack = environment.fleet, environment.stack
    names = [endpoint["name"] for endpoint in fleet.endpoints]
    fleet.set_latency(delay)
    try:
        async with stack.mcp() as mcp:
            started = time.perf_counter()
            created = await mcp.call("plan.create.v1", {
                "description": f"benchmark: {CHANGES_PER_DEVICE} addresses on {len(names)} devices",
                "changes": plan_changes(names),
                "rollout": {"canary": CANARY, "batch_size": BATCH_SIZE, "max_parallel": MAX_PARALLEL},
            })
            create_seconds = time.perf_counter() - started
            fleet.reset_counts()
            temporal = await Client.connect(stack.settings.temporal.address,
                                            data_converter=pydantic_data_converter)
            started = time.perf_counter()
            await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                             "plan_hash": created["plan_hash"]})
            handle = temporal.get_workflow_handle(workflow_id_for(created["plan_id"]))
            await handle.result(rpc_timeout=None, follow_runs=True)
            wall = time.perf_counter() - started
            replies = sum(fleet.counts().values())
            commands = fleet.command_counts()
            status = await mcp.call("plan.status.v1", {"plan_id": created["plan_id"]})
    finally:
        fleet.set_latency(0.0)
    if status["status"] != "applied":
        raise RuntimeError(f"benchmark plan ended {status['status']}: {status['detail']}")
    shape = RolloutShape(devices=len(names), changes_per_device=CHANGES_PER_DEVICE, canary=CANARY,
                         batch_size=BATCH_SIZE, max_parallel=MAX_PARALLEL,
                         activity_slots=WORKER_ACTIVITY_SLOTS, delay=delay,
                         preflight_round_trips=PREFLIGHT_PRINTS)
    record = rollout_result(shape, wall=wall, replies=replies, create_seconds=create_seconds,
                            risk=created.get("risk", {}).get("level"))
    record["commands_counted"] = commands
    return record


def rollout_result(shape: RolloutShape, *, wall: float, replies: int, create_seconds: float,
                   risk: str | None) -> dict[str, Any]:
    """Return the JSON record of one rollout: its shape, floor, counts and ratio."""
    floor = rollout_floor(shape)
    return {
        "shape": asdict(shape),
        "risk": risk,
        "plan_create_seconds": create_seconds,
        "wall_seconds": wall,
        "floor_seconds": floor.to_dict(),
        "wall_to_floor": ratio(wall, floor.total),
        "round_trips_expected": shape.total_round_trips(),
        "round_trips_counted": replies,
    }
