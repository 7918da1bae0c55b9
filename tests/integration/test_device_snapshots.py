"""Configuration snapshots: the per-environment schedule, retention pruning, failures, and diffs.

Temporal's time-skipping test server (temporalio 1.35) rejects CreateSchedule as
"unimplemented", so the schedule itself runs on the session's dev server with a one-second
interval, and the time-skipping server covers the workflow's retries of an unreachable device.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client, ScheduleIntervalSpec
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.snapshots import SnapshotActivities, snapshot_activities
from inventory.devices import DeviceSessions, Inventory, enrol_device
from simulator.fleet import Fleet
from storage.crypto import KeyRing, generate_key
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Device, Snapshot
from tests.support.lifecycle import serve
from tikflow.devstack import free_port, venv_binary
from tikflow.settings import Settings
from tikflow.snapshot_schedules import apply_snapshot_schedules
from tikflow.temporal import connect_temporal, ensure_search_attributes
from workflows.device_snapshot import DeviceSnapshotWorkflow, schedule_id_for
from workflows.snapshot_models import DeviceSnapshotInput, DeviceSnapshotResult

WAIT_SECONDS = 60.0


@dataclass
class SnapshotStack:
    settings: Settings
    db: Database
    fleet: Fleet
    sessions: DeviceSessions
    devices: dict[str, Device]


@pytest.fixture
async def snapshot_stack(tmp_path) -> AsyncIterator[SnapshotStack]:
    """Two lab routers and one staging router enrolled in a fresh SQLite database."""
    url = f"sqlite+aiosqlite:///{tmp_path}/tikflow.db"
    await asyncio.to_thread(upgrade, url)
    token = secrets.token_urlsafe(16)
    settings = Settings(env="lab", var_dir=tmp_path, dev_token=token, master_key=generate_key(),
                        database={"url": url},
                        temporal={"task_queue": f"snapshots-{uuid.uuid4().hex[:8]}"},
                        routeros={"connect_timeout": 2, "command_timeout": 10, "retries": 1},
                        snapshots={"lab": {"interval_seconds": 1, "retention": 3}})
    db = Database(url)
    inventory = Inventory(db, KeyRing(settings.master_key.get_secret_value()))
    async with Fleet(3) as fleet:
        devices = {}
        for name, environment in (("r1", "lab"), ("r2", "lab"), ("r3", "staging")):
            devices[name] = await enrol_device(
                inventory, settings, name=name, address=fleet.host,
                port=fleet.device(name).ports["api"], transport="api", environment=environment,
                username="tikflow", password=fleet.service_password)
        sessions = DeviceSessions(inventory, settings)
        try:
            yield SnapshotStack(settings=settings, db=db, fleet=fleet, sessions=sessions,
                                devices=devices)
        finally:
            await sessions.close()
            await db.dispose()


def worker_for(client: Client, stack: SnapshotStack) -> Worker:
    handler = SnapshotActivities(stack.db, stack.sessions.inventory, stack.sessions, stack.settings)
    return Worker(client, task_queue=stack.settings.temporal.task_queue,
                  workflows=[DeviceSnapshotWorkflow], activities=snapshot_activities(handler))


async def snapshots_of(db: Database, device_id: str, reason: str | None = None) -> list[Snapshot]:
    async with db.session() as session:
        query = select(Snapshot).where(Snapshot.device_id == device_id).order_by(Snapshot.id)
        if reason:
            query = query.where(Snapshot.reason == reason)
        return list((await session.scalars(query)).all())


async def wait_for_completed_runs(client: Client, schedule_id: str, count: int) -> None:
    """Wait until the schedule has started ``count`` runs and all of them have finished."""
    handle = client.get_schedule_handle(schedule_id)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        info = (await handle.describe()).info
        if info.num_actions >= count and not info.running_actions:
            return
        assert time.monotonic() < deadline, f"{schedule_id}: {info.num_actions} runs after {WAIT_SECONDS} s"
        await asyncio.sleep(0.2)


async def test_schedule_snapshots_environment_and_prunes(snapshot_stack, temporal_server):
    """The lab schedule exports each lab router on every run and keeps the newest three."""
    stack = snapshot_stack
    settings = stack.settings.model_copy(update={"temporal": stack.settings.temporal.model_copy(
        update={"address": temporal_server.address})})
    client = await connect_temporal(settings)
    await ensure_search_attributes(client)
    r1 = stack.devices["r1"]
    async with stack.db.session() as session:
        session.add(Snapshot(device_id=r1.id, reason="pre-apply", plan_id="plan-kept",
                             tables={"/ip/address": []}, sha256="c" * 64))

    async with worker_for(client, stack):
        changes = await apply_snapshot_schedules(client, settings, ("lab",))
        try:
            assert [(c.schedule_id, c.action) for c in changes] == [("snapshot-schedule:lab", "created")]
            await wait_for_completed_runs(client, schedule_id_for("lab"), 5)
            await client.get_schedule_handle(schedule_id_for("lab")).pause(note="test done")
            await wait_for_completed_runs(client, schedule_id_for("lab"), 5)

            for name in ("r1", "r2"):
                scheduled = await snapshots_of(stack.db, stack.devices[name].id, "scheduled")
                assert len(scheduled) == 3, name
                assert all("by RouterOS" in s.export_text for s in scheduled)
            assert await snapshots_of(stack.db, stack.devices["r3"].id, "scheduled") == []
            kept = await snapshots_of(stack.db, r1.id, "pre-apply")
            assert [s.plan_id for s in kept] == ["plan-kept"]

            slower = settings.model_copy(update={"snapshots": settings.snapshots.model_copy(
                update={"lab": settings.snapshots.lab.model_copy(update={"interval_seconds": 7200})})})
            again = await apply_snapshot_schedules(client, slower, ("lab",))
            assert again[0].action == "updated"
            spec = (await client.get_schedule_handle(schedule_id_for("lab")).describe()).schedule.spec
            assert spec.intervals == [ScheduleIntervalSpec(every=timedelta(hours=2))]
        finally:
            await client.get_schedule_handle(schedule_id_for("lab")).delete()

    query = f'WorkflowType = "DeviceSnapshot" AND TaskQueue = "{settings.temporal.task_queue}"'
    histories = [await client.get_workflow_handle(w.id, run_id=w.run_id).fetch_history()
                 async for w in client.list_workflows(query)]
    assert len(histories) >= 5
    assert all(h.workflow_id.startswith("device-snapshot:lab-") for h in histories)
    replayer = Replayer(workflows=[DeviceSnapshotWorkflow], data_converter=pydantic_data_converter)
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, str(result.replay_failure)


async def test_snapshot_reports_unreachable_device(snapshot_stack):
    """An unreachable router fails after its retries; the others are stored and pruned."""
    stack = snapshot_stack
    async with stack.db.session() as session:
        row = await session.get(Device, stack.devices["r2"].id)
        row.port = free_port()  # nothing listens there, so every attempt is refused
    test_server = str(Path(venv_binary("temporal-test-server")))
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server)
    try:
        async with worker_for(env.client, stack):
            results = []
            for run in range(3):
                results.append(await env.client.execute_workflow(
                    DeviceSnapshotWorkflow.run,
                    DeviceSnapshotInput(environment="lab", retention=2),
                    id=f"device-snapshot:lab-run-{run}",
                    task_queue=stack.settings.temporal.task_queue,
                    result_type=DeviceSnapshotResult,
                    execution_timeout=timedelta(hours=1)))
    finally:
        await env.shutdown()

    r1, r2 = stack.devices["r1"].id, stack.devices["r2"].id
    for result in results:
        assert [s.device_id for s in result.stored] == [r1]
        assert list(result.failed) == [r2]
        assert "r2" in result.failed[r2]
    assert [s.pruned for s in (r.stored[0] for r in results)] == [0, 0, 1]
    stored = await snapshots_of(stack.db, r1, "scheduled")
    assert [s.id for s in stored] == [results[1].stored[0].snapshot_id, results[2].stored[0].snapshot_id]
    assert await snapshots_of(stack.db, r2, "scheduled") == []


async def test_snapshot_diff_through_api_and_cli(snapshot_stack):
    """Two exports around a change diff to exactly that change, by id and by latest~N."""
    from api.app import create_app

    stack = snapshot_stack
    handler = SnapshotActivities(stack.db, stack.sessions.inventory, stack.sessions, stack.settings)
    r1 = stack.devices["r1"]
    export = handler.export_device_snapshot
    first = await run_activity(export, r1.id)
    async with stack.sessions.session(r1) as client:
        await client.add("/ip/address", {"address": "10.77.0.1/24", "interface": "ether1",
                                         "comment": "diff-probe"})
    second = await run_activity(export, r1.id)

    server, task, port = await serve(create_app(stack.settings))
    base = f"http://127.0.0.1:{port}/api/v1"
    headers = {"Authorization": f"Bearer {stack.settings.dev_token.get_secret_value()}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            listed = (await http.get("/devices/r1/snapshots")).json()
            assert [item["id"] for item in listed["items"][:2]] == [second.snapshot_id, first.snapshot_id]

            by_id = (await http.get("/devices/r1/snapshots/diff",
                                    params={"from": first.snapshot_id, "to": second.snapshot_id})).json()
            relative = (await http.get("/devices/r1/snapshots/diff",
                                       params={"from": "latest~1", "to": "latest",
                                               "reason": "scheduled"})).json()
            added = [line for line in by_id["diff"].splitlines()
                     if line.startswith("+") and not line.startswith("+++")]
            assert len(added) >= 1
            assert all("10.77.0.1/24" in line or line.startswith("+/ip") for line in added)
            assert not [line for line in by_id["diff"].splitlines()
                        if line.startswith("-") and not line.startswith("---")]
            assert relative["diff"] == by_id["diff"]
            assert by_id["identical"] is False

            same = (await http.get("/devices/r1/snapshots/diff",
                                   params={"from": "latest", "to": "latest"})).json()
            assert same["identical"] is True
            bad = await http.get("/devices/r1/snapshots/diff", params={"from": "yesterday"})
            assert bad.status_code == 422
            assert "latest~N" in bad.json()["detail"]
            missing = await http.get("/devices/r1/snapshots/diff", params={"from": "latest~99"})
            assert missing.status_code == 404
            other = await http.get(f"/devices/r2/snapshots/{first.snapshot_id}")
            assert other.status_code == 404

        env = {"TIKFLOW_API_URL": f"http://127.0.0.1:{port}",
               "TIKFLOW_TOKEN": stack.settings.dev_token.get_secret_value()}
        code, stdout, stderr = await run_cli(env, "devices", "diff", "r1", "--from", "latest~1")
        assert code == 0, stderr
        assert "+++ snapshot" in stdout
        assert "10.77.0.1/24" in stdout
        code, _, stderr = await run_cli(env, "snapshots", "diff", "r1", "--from", "nonsense")
        assert code == 2
        assert "invalid snapshot selector" in stderr
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def run_activity(activity_fn, device_id: str):
    """Run the export activity outside a worker, as Temporal's activity environment does."""
    from temporalio.testing import ActivityEnvironment

    from workflows.snapshot_models import DeviceExportInput

    return await ActivityEnvironment().run(
        activity_fn, DeviceExportInput(device_id=device_id, reason="scheduled", retention=10))


async def run_cli(env: dict[str, str], *arguments: str) -> tuple[int, str, str]:
    import os

    process = await asyncio.create_subprocess_exec(
        venv_binary("tikflow"), *arguments, env=os.environ | env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_take_snapshot_on_demand(snapshot_stack, temporal_server):
    """POST /snapshots starts device-snapshot:{id}:{time}; the CLI waits for the manual snapshot."""
    from api.app import create_app

    stack = snapshot_stack
    settings = stack.settings.model_copy(update={"temporal": stack.settings.temporal.model_copy(
        update={"address": temporal_server.address})})
    client = await connect_temporal(settings)
    await ensure_search_attributes(client)
    r1 = stack.devices["r1"]
    server, task, port = await serve(create_app(settings))
    token = settings.dev_token.get_secret_value()
    try:
        async with worker_for(client, stack):
            env = {"TIKFLOW_API_URL": f"http://127.0.0.1:{port}", "TIKFLOW_TOKEN": token}
            code, stdout, stderr = await run_cli(env, "snapshots", "take", "r1")
            assert code == 0, stderr
            assert f"started device-snapshot:{r1.id}:" in stdout
            assert "stored" in stdout

            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30,
                                         headers={"Authorization": f"Bearer {token}"}) as http:
                rejected = await http.post("/devices/nope/snapshots")
                assert rejected.status_code == 404
                audit = (await http.get("/audit", params={"action": "device.snapshot"})).json()
                assert [event["result"] for event in audit["items"]] == ["started"]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)

    manual = await snapshots_of(stack.db, r1.id, "manual")
    assert len(manual) == 1
    assert "by RouterOS" in manual[0].export_text
