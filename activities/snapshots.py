"""Activities of the DeviceSnapshot workflow: pick the devices, export each one, prune old copies.

Exports are terse and hide sensitive values (``show-sensitive`` off), so a snapshot contains no
router password. Pruning deletes only snapshots of the same reason: the ``pre-apply``
snapshots that plan rollbacks compare against are never touched by a schedule.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy import delete, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from inventory.devices import DeviceNotFound, DeviceSessions, DeviceUnavailable, Inventory
from routeros.errors import DeviceError
from storage.db import Database
from storage.models import Device, Snapshot
from tikflow.settings import Settings
from workflows.snapshot_models import (
    DeviceExportInput,
    DeviceExportResult,
    DeviceSnapshotInput,
    SnapshotTargets,
)

log = structlog.get_logger(__name__)

ENVIRONMENTS = ("lab", "staging", "prod")


class SnapshotActivities:
    """Database and device side effects of scheduled and on-demand configuration snapshots."""

    def __init__(self, db: Database, inventory: Inventory, sessions: DeviceSessions,
                 settings: Settings) -> None:
        self.db = db
        self.inventory = inventory
        self.sessions = sessions
        self.settings = settings

    @activity.defn
    async def resolve_snapshot_targets(self, request: DeviceSnapshotInput) -> SnapshotTargets:
        """Return the active devices to export and the retention that applies to them.

        Raises:
            ApplicationError: ``InvalidValue`` for an unknown environment, device or a device
                that is not active.
        """
        if request.environment is not None and request.environment not in ENVIRONMENTS:
            raise ApplicationError(f"unknown environment {request.environment!r}; use one of "
                                   f"{', '.join(ENVIRONMENTS)}", type="InvalidValue", non_retryable=True)
        retention = request.retention or self._retention(request.environment)
        if request.device_ids:
            return SnapshotTargets(device_ids=[await self._active_id(d) for d in request.device_ids],
                                   retention=retention)
        async with self.db.session() as session:
            ids = (await session.scalars(
                select(Device.id).where(Device.environment == request.environment,
                                        Device.status == "active").order_by(Device.name))).all()
        return SnapshotTargets(device_ids=list(ids), retention=retention)

    def _retention(self, environment: str | None) -> int:
        policy = getattr(self.settings.snapshots, environment or "lab")
        return policy.retention

    async def _active_id(self, id_or_name: str) -> str:
        try:
            device = await self.inventory.find(id_or_name)
        except DeviceNotFound as err:
            raise ApplicationError(str(err), type="InvalidValue", non_retryable=True) from None
        if device.status != "active":
            raise ApplicationError(f"device {device.name} is {device.status}; only active devices "
                                   "are exported", type="InvalidValue", non_retryable=True)
        return device.id

    @activity.defn
    async def export_device_snapshot(self, request: DeviceExportInput) -> DeviceExportResult:
        """Store the device's export as a snapshot, then keep only the newest ``retention``."""
        async with self._client(request.device_id) as (device, client):
            export_text = await client.export(terse=True, show_sensitive=False)
        raw = export_text.encode("utf-8", "surrogateescape")
        digest = hashlib.sha256(raw).hexdigest()
        async with self.db.session() as session:
            # PostgreSQL text cannot store bytes that are not UTF-8 (an old router's code page),
            # so they become U+FFFD here. The digest still covers the original bytes.
            snapshot = Snapshot(device_id=device.id, reason=request.reason, sha256=digest,
                                export_text=raw.decode("utf-8", "replace"))
            session.add(snapshot)
            await session.flush()
            snapshot_id = snapshot.id
        pruned = await prune_snapshots(self.db, device.id, request.reason, request.retention)
        log.info("device snapshot stored", device_id=device.id, snapshot_id=snapshot_id,
                 reason=request.reason, pruned=pruned, workflow_id=activity.info().workflow_id)
        return DeviceExportResult(device_id=device.id, snapshot_id=snapshot_id, sha256=digest,
                                  pruned=pruned)

    @asynccontextmanager
    async def _client(self, device_id: str) -> AsyncIterator[tuple[Device, object]]:
        try:
            device = await self.inventory.find(device_id)
        except DeviceNotFound as err:
            raise ApplicationError(str(err), type="DeviceNotFound", non_retryable=True) from None
        try:
            async with heartbeating(5.0), self.sessions.session(device) as client:
                yield device, client
        except DeviceUnavailable as err:
            raise ApplicationError(str(err), type="DeviceUnavailable", non_retryable=True) from None
        except DeviceError as err:
            raise ApplicationError(f"{device.name}: {err.message}", type=type(err).__name__,
                                   non_retryable=not err.retryable) from None


async def prune_snapshots(db: Database, device_id: str, reason: str, retention: int) -> int:
    """Delete all but the newest ``retention`` snapshots of this reason; return how many went."""
    async with db.session() as session:
        keep = select(Snapshot.id).where(Snapshot.device_id == device_id, Snapshot.reason == reason) \
            .order_by(Snapshot.taken_at.desc(), Snapshot.id.desc()).limit(retention)
        kept = set((await session.scalars(keep)).all())
        old = select(Snapshot.id).where(Snapshot.device_id == device_id, Snapshot.reason == reason)
        expired = [snapshot_id for snapshot_id in (await session.scalars(old)).all()
                  if snapshot_id not in kept]
        if expired:
            await session.execute(delete(Snapshot).where(Snapshot.id.in_(expired)))
        return len(expired)


def snapshot_activities(handler: SnapshotActivities) -> list:
    """Return the activity callables a worker registers for DeviceSnapshot."""
    return [handler.resolve_snapshot_targets, handler.export_device_snapshot]
