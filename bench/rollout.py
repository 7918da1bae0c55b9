"""Rollout wall time against the floor set by device round trips, delay and concurrency.

Plans add ``CHANGES_PER_DEVICE`` addresses to every device of the fleet, through MCP, with
the simulator delaying every reply. A plan may contain at most ``planning.planner.MAX_CHANGES``
changes, so a large fleet is split into plans of whole devices, applied one after another.
The wall time of a plan runs from the ``plan.apply.v1`` call until the PlanApply workflow
returns. The fleet process counts the replies the devices sent during the apply, which
checks the round-trip count the floor is computed from.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.environment import Environment
from bench.history import ActivitySpan, activity_spans, activity_timing, phase_seconds
from bench.stats import Floor, RolloutShape, ratio, rollout_floor
from planning.planner import MAX_CHANGES
from tests.support.stack import McpSession
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


@dataclass(frozen=True)
class PlanRun:
    """One applied plan: how it was shaped, how long it took and what the devices sent."""

    shape: RolloutShape
    wall: float
    create_seconds: float
    replies: int
    commands: dict[str, int]
    risk: str | None
    spans: list[ActivitySpan] = field(default_factory=list)


def plan_changes(device_names: list[str]) -> list[dict[str, Any]]:
    """Return ``CHANGES_PER_DEVICE`` address adds on ``bridge-lan`` for each device."""
    return [
        {"device": name, "path": "/ip/address", "action": "add",
         "values": {"address": f"10.250.{index}.1/24", "interface": "bridge-lan"}}
        for name in device_names
        for index in range(CHANGES_PER_DEVICE)
    ]


def split_devices(names: list[str], changes_per_device: int, max_changes: int) -> list[list[str]]:
    """Split devices into groups whose changes fit in one plan, keeping each device whole."""
    per_plan = max(1, max_changes // changes_per_device)
    return [names[start:start + per_plan] for start in range(0, len(names), per_plan)]


async def measure_rollout(environment: Environment, delay: float) -> dict[str, Any]:
    """Apply plans to every device of the environment's fleet and compare with the floor.

    Raises:
        RuntimeError: A plan did not end ``applied``.
    """
    fleet, stack = environment.fleet, environment.stack
    names = [endpoint["name"] for endpoint in fleet.endpoints]
    temporal = await Client.connect(stack.settings.temporal.address,
                                    data_converter=pydantic_data_converter)
    runs: list[PlanRun] = []
    fleet.set_latency(delay)
    try:
        async with stack.mcp() as mcp:
            for group in split_devices(names, CHANGES_PER_DEVICE, MAX_CHANGES):
                runs.append(await apply_plan(environment, mcp, temporal, group, delay))
    finally:
        fleet.set_latency(0.0)
    return rollout_result(runs)


async def apply_plan(environment: Environment, mcp: McpSession, temporal: Client,
                     names: list[str], delay: float) -> PlanRun:
    """Create and apply one plan over ``names`` and return its measurements."""
    fleet = environment.fleet
    started = time.perf_counter()
    created = await mcp.call("plan.create.v1", {
        "description": f"benchmark: {CHANGES_PER_DEVICE} addresses on {len(names)} devices",
        "changes": plan_changes(names),
        "rollout": {"canary": CANARY, "batch_size": BATCH_SIZE, "max_parallel": MAX_PARALLEL},
    })
    create_seconds = time.perf_counter() - started

    fleet.reset_counts()
    started = time.perf_counter()
    await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"], "plan_hash": created["plan_hash"]})
    handle = temporal.get_workflow_handle(workflow_id_for(created["plan_id"]))
    await handle.result(rpc_timeout=None, follow_runs=True)
    wall = time.perf_counter() - started
    history = await handle.fetch_history()

    replies = sum(fleet.counts().values())
    commands = fleet.command_counts()
    status = await mcp.call("plan.status.v1", {"plan_id": created["plan_id"]})
    if status["status"] != "applied":
        raise RuntimeError(f"benchmark plan {created['plan_id']} ended {status['status']}: "
                           f"{status['detail']}")
    shape = RolloutShape(devices=len(names), changes_per_device=CHANGES_PER_DEVICE, canary=CANARY,
                         batch_size=BATCH_SIZE, max_parallel=MAX_PARALLEL,
                         activity_slots=WORKER_ACTIVITY_SLOTS, delay=delay,
                         preflight_round_trips=PREFLIGHT_PRINTS)
    return PlanRun(shape=shape, wall=wall, create_seconds=create_seconds, replies=replies,
                   commands=commands, risk=created.get("risk", {}).get("level"),
                   spans=activity_spans(history.events))


def rollout_result(runs: list[PlanRun]) -> dict[str, Any]:
    """Return the JSON record of a rollout: per-plan and summed floors, counts and the ratio."""
    floors = [rollout_floor(run.shape) for run in runs]
    floor = Floor(preflight=sum(f.preflight for f in floors), apply=sum(f.apply for f in floors),
                  health_gates=sum(f.health_gates for f in floors))
    wall = sum(run.wall for run in runs)
    commands: Counter[str] = Counter()
    for run in runs:
        commands.update(run.commands)
    phases = [phase_seconds(run.spans) for run in runs]
    preflight = sum(phase["preflight"] for phase in phases)
    batches = sum(phase["batches"] for phase in phases)
    return {
        "shape": asdict(runs[0].shape) | {"devices": sum(run.shape.devices for run in runs)},
        "max_changes_per_plan": MAX_CHANGES,
        "plans": [{"devices": run.shape.devices, "wall_seconds": run.wall,
                   "floor_seconds": floor_of_run.total, "plan_create_seconds": run.create_seconds,
                   "risk": run.risk}
                  for run, floor_of_run in zip(runs, floors, strict=True)],
        "risk": ", ".join(sorted({run.risk or "-" for run in runs})),
        "plan_create_seconds": sum(run.create_seconds for run in runs),
        "wall_seconds": wall,
        "floor_seconds": floor.to_dict(),
        "wall_to_floor": ratio(wall, floor.total),
        "round_trips_expected": sum(run.shape.total_round_trips() for run in runs),
        "round_trips_counted": sum(run.replies for run in runs),
        "commands_counted": dict(commands),
        "phase_wall_seconds": {"preflight": preflight, "batches": batches},
        "phase_to_floor": {"preflight": ratio(preflight, floor.preflight),
                           "batches": ratio(batches, floor.apply + floor.health_gates)},
        "activities": activity_timing([span for run in runs for span in run.spans]),
    }
