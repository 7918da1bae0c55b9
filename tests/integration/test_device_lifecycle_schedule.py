"""Scheduled rotation: a Temporal Schedule per environment rotates every active device in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.lifecycle import WORKFLOW_TIMEOUT, Stack, lifecycle_stack
from workflows.models import EnvironmentRotationResult


@pytest.fixture
async def stack(database_url: str, temporal_server, tmp_path) -> AsyncIterator[Stack]:
    async with lifecycle_stack(database_url, temporal_server.address, tmp_path) as running:
        yield running


async def started_run(stack: Stack, environment: str) -> str:
    """Return the workflow id the schedule's latest firing started."""
    handle = stack.temporal.get_schedule_handle(f"credential-rotation:{environment}")

    async def first_action() -> str:
        while True:
            actions = (await handle.describe()).info.recent_actions
            if actions:
                return actions[-1].action.workflow_id
            await asyncio.sleep(0.2)

    return await asyncio.wait_for(first_action(), WORKFLOW_TIMEOUT)


async def test_rotation_schedule_rotates_active_devices_of_environment(stack: Stack) -> None:
    """Triggering the lab schedule rotates the lab devices and leaves staging alone."""
    lab = await stack.register("sched-lab", device="r1")
    staging = await stack.register("sched-staging", device="r2", environment="staging")
    for started in (lab, staging):
        assert (await stack.wait(started["device_id"], started["workflow_id"]))["status"] == "active"

    created = await stack.http.put("/api/v1/rotation-schedules/lab",
                                   json={"every_days": 30, "policy": "new-user"})
    triggered = await stack.http.post("/api/v1/rotation-schedules/lab/trigger")
    workflow_id = await started_run(stack, "lab")
    handle = stack.temporal.get_workflow_handle(workflow_id, result_type=EnvironmentRotationResult)
    result = await asyncio.wait_for(handle.result(), WORKFLOW_TIMEOUT)
    listed = (await stack.http.get("/api/v1/rotation-schedules")).json()["items"]

    assert created.status_code == 200, created.text
    assert created.json()["every_days"] == 30
    assert triggered.status_code == 202
    assert result.outcomes == {lab["device_id"]: "rotated"}
    lab_device = (await stack.http.get(f"/api/v1/devices/{lab['device_id']}")).json()
    assert [c["state"] for c in lab_device["credentials"]] == ["retired", "active"]
    staging_device = (await stack.http.get(f"/api/v1/devices/{staging['device_id']}")).json()
    assert [c["state"] for c in staging_device["credentials"]] == ["active"]
    assert [(item["environment"], item["policy"]) for item in listed] == [("lab", "new-user")]

    deleted = await stack.http.delete("/api/v1/rotation-schedules/lab")
    assert deleted.status_code == 204
    assert (await stack.http.get("/api/v1/rotation-schedules")).json()["items"] == []


async def test_rotation_schedule_rejects_bad_input(stack: Stack) -> None:
    """Unknown environments, bad intervals and missing schedules get 422 or 404."""
    bad_env = await stack.http.put("/api/v1/rotation-schedules/dev", json={"every_days": 7})
    bad_interval = await stack.http.put("/api/v1/rotation-schedules/lab", json={"every_days": 0})
    missing = await stack.http.post("/api/v1/rotation-schedules/prod/trigger")

    assert bad_env.status_code == 422
    assert bad_interval.status_code == 422
    assert missing.status_code == 404
    assert "has no rotation schedule" in missing.json()["detail"]


async def test_rotation_schedule_cli_sets_shows_and_deletes(stack: Stack) -> None:
    """The rotation-schedule commands set, show, trigger and delete a schedule."""
    code, stdout, stderr = await stack.cli("devices", "rotation-schedule", "set", "--env", "staging",
                                           "--every-days", "7", "--policy", "same-user")
    shown = await stack.cli_json("devices", "rotation-schedule", "show")
    triggered = await stack.cli("devices", "rotation-schedule", "trigger", "--env", "staging")
    deleted = await stack.cli("devices", "rotation-schedule", "delete", "--env", "staging")
    missing = await stack.cli("devices", "rotation-schedule", "delete", "--env", "staging")

    assert code == 0, stderr
    assert "rotating every 7 days (same-user)" in stdout
    assert [(s["environment"], s["every_days"]) for s in shown] == [("staging", 7)]
    assert triggered[0] == 0
    assert deleted[0] == 0
    assert missing[0] == 3
