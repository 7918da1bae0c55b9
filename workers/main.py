"""The worker process: hosts the workflows and activities on tikflow's task queue."""

from __future__ import annotations

import asyncio

import prometheus_client
import structlog
from temporalio.worker import Worker

from activities.devices import DeviceLifecycleActivities, activities_of
from activities.plan_apply import PlanApplyActivities
from activities.snapshots import SnapshotActivities, snapshot_activities
from inventory.devices import DeviceSessions, Inventory, load_key_ring
from storage.db import Database
from tikflow import sdnotify
from tikflow.settings import Settings
from tikflow.temporal import connect_temporal, ensure_search_attributes
from workflows.device_lifecycle import WORKFLOWS as LIFECYCLE_WORKFLOWS
from workflows.device_snapshot import DeviceSnapshotWorkflow
from workflows.plan_apply import PlanApplyWorkflow

log = structlog.get_logger(__name__)

WORKFLOWS = [PlanApplyWorkflow, *LIFECYCLE_WORKFLOWS, DeviceSnapshotWorkflow]


def plan_apply_activities(handler: PlanApplyActivities) -> list:
    return [
        handler.load_plan_for_apply,
        handler.snapshot_and_check,
        handler.apply_change,
        handler.undo_change,
        handler.verify_applied,
        handler.verify_rolled_back,
        handler.record_plan_status,
        handler.arm_dead_man,
        handler.disarm_dead_man,
    ]


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run the worker until ``stop`` is set (or forever); close connections on the way out."""
    db = Database(settings.database.url, pool_size=settings.database.pool_size)
    inventory = Inventory(db, load_key_ring(settings))
    sessions = DeviceSessions(inventory, settings)
    if settings.worker.metrics_port:
        prometheus_client.start_http_server(settings.worker.metrics_port, settings.worker.metrics_host)
    client = await connect_temporal(settings)
    added = await ensure_search_attributes(client)
    if added:
        log.info("registered search attributes", names=added)
    handler = PlanApplyActivities(db, inventory, sessions, settings)
    worker = Worker(
        client,
        task_queue=settings.temporal.task_queue,
        workflows=WORKFLOWS,
        activities=[*plan_apply_activities(handler),
                    *activities_of(DeviceLifecycleActivities(db, inventory.keys, settings)),
                    *snapshot_activities(SnapshotActivities(db, inventory, sessions, settings))],
        max_concurrent_activities=settings.worker.max_concurrent_activities,
    )
    log.info("worker started", task_queue=settings.temporal.task_queue,
             temporal=settings.temporal.address)
    try:
        async with worker:
            sdnotify.notify("READY=1")
            watchdog = asyncio.create_task(sdnotify.run_watchdog())
            try:
                await (stop.wait() if stop else asyncio.Event().wait())
            finally:
                sdnotify.notify("STOPPING=1")
                watchdog.cancel()
    finally:
        await sessions.close()
        await db.dispose()
        log.info("worker stopped")
