"""Configuration snapshots in the admin API: list a device's snapshots, read one, diff two.

Snapshots are selected by id or relative to the newest: ``latest`` is the newest snapshot,
``latest~1`` the one before it, and so on. An optional ``reason`` (``scheduled``, ``register``,
``pre-apply``...) narrows the list and the relative selectors to snapshots of that reason.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from sqlalchemy import select
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.admin.devices import load_device
from api.console.snapshots import snapshot_lines
from api.deps import ServicesDep, require_role
from api.security import Principal
from storage.audit import record_audit
from storage.db import Database
from storage.models import Device, Snapshot
from workflows.device_snapshot import ENVIRONMENT, DeviceSnapshotWorkflow, workflow_id_for
from workflows.snapshot_models import DeviceSnapshotInput

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/devices", tags=["snapshots"])

ReaderDep = Annotated[Principal, Depends(require_role("reader", "operator", "approver", "admin"))]
OperatorDep = Annotated[Principal, Depends(require_role("operator", "admin"))]
_SELECTOR = re.compile(r"^(?:latest(?:~(\d{1,6}))?|(\d{1,18}))$")
MAX_LIST = 500
# A diff longer than this many lines is cut; exports of big routers run to tens of thousands.
MAX_DIFF_LINES = 20_000


def snapshot_public(snapshot: Snapshot) -> dict[str, Any]:
    """Describe a snapshot without its content."""
    return {
        "id": snapshot.id,
        "taken_at": snapshot.taken_at.isoformat(),
        "reason": snapshot.reason,
        "plan_id": snapshot.plan_id,
        "sha256": snapshot.sha256,
        "kind": "export" if snapshot.export_text else "tables",
        "lines": len(snapshot_lines(snapshot)),
    }


async def resolve_snapshot(db: Database, device: Device, selector: str,
                           reason: str | None = None) -> Snapshot:
    """Return the device's snapshot named by an id, ``latest`` or ``latest~N``.

    Raises:
        HTTPException: 422 for a malformed selector, 404 when no such snapshot exists.
    """
    match = _SELECTOR.match(selector.strip())
    if match is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"invalid snapshot selector {selector!r}; use an id, latest or "
                                   "latest~N (N snapshots before the newest)")
    async with db.session() as session:
        if match[2] is not None:
            snapshot = await session.get(Snapshot, int(match[2]))
            if snapshot is not None and snapshot.device_id == device.id:
                return snapshot
            detail = f"device {device.name} has no snapshot {match[2]}"
        else:
            offset = int(match[1] or 0)
            query = _newest_first(device.id, reason).offset(offset).limit(1)
            snapshot = await session.scalar(query)
            if snapshot is not None:
                return snapshot
            detail = (f"device {device.name} has fewer than {offset + 1} "
                      f"{reason + ' ' if reason else ''}snapshots")
    raise HTTPException(status.HTTP_404_NOT_FOUND,
                        detail=f"{detail}; list them with GET /api/v1/devices/{device.name}/snapshots")


def _newest_first(device_id: str, reason: str | None):
    query = select(Snapshot).where(Snapshot.device_id == device_id)
    if reason:
        query = query.where(Snapshot.reason == reason)
    return query.order_by(Snapshot.taken_at.desc(), Snapshot.id.desc())


def unified_diff(older: Snapshot, newer: Snapshot) -> tuple[str, bool]:
    """Return the unified diff of two snapshots' text and whether it was cut."""
    lines = list(difflib.unified_diff(
        snapshot_lines(older), snapshot_lines(newer), lineterm="",
        fromfile=f"snapshot {older.id} ({older.reason}, {older.taken_at.isoformat()})",
        tofile=f"snapshot {newer.id} ({newer.reason}, {newer.taken_at.isoformat()})"))
    truncated = len(lines) > MAX_DIFF_LINES
    return "\n".join(lines[:MAX_DIFF_LINES]) + ("\n" if lines else ""), truncated


@router.get("/{device}/snapshots")
async def list_snapshots(device: str, services: ServicesDep, _: ReaderDep,
                         reason: str | None = None,
                         limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50) -> dict[str, Any]:
    """List the device's snapshots, newest first, without their content."""
    row = await load_device(services, device)
    async with services.db.session() as session:
        snapshots = (await session.scalars(_newest_first(row.id, reason).limit(limit))).all()
    return {"device": {"id": row.id, "name": row.name},
            "items": [snapshot_public(s) for s in snapshots]}


@router.get("/{device}/snapshots/diff")
async def diff_snapshots(
    device: str, services: ServicesDep, _: ReaderDep,
    from_: Annotated[str, Query(alias="from", description="id, latest or latest~N")] = "latest~1",
    to: Annotated[str, Query(description="id, latest or latest~N")] = "latest",
    reason: str | None = None,
) -> dict[str, Any]:
    """Return a unified diff from one snapshot of the device to another."""
    row = await load_device(services, device)
    older = await resolve_snapshot(services.db, row, from_, reason)
    newer = await resolve_snapshot(services.db, row, to, reason)
    text, truncated = unified_diff(older, newer)
    return {"device": {"id": row.id, "name": row.name}, "from": snapshot_public(older),
            "to": snapshot_public(newer), "identical": not text,
            "diff": text, "truncated": truncated}


@router.get("/{device}/snapshots/{selector}")
async def show_snapshot(device: str, selector: str, services: ServicesDep, _: ReaderDep,
                        reason: str | None = None) -> dict[str, Any]:
    """Return one snapshot with its content: the export text, or the saved tables."""
    row = await load_device(services, device)
    snapshot = await resolve_snapshot(services.db, row, selector, reason)
    return snapshot_public(snapshot) | {"export_text": snapshot.export_text, "tables": snapshot.tables}


@router.post("/{device}/snapshots", status_code=status.HTTP_202_ACCEPTED)
async def take_snapshot(device: str, request: Request, services: ServicesDep,
                        principal: OperatorDep) -> dict[str, Any]:
    """Start a DeviceSnapshot run that exports this device now (reason ``manual``)."""
    row = await load_device(services, device)
    if row.status != "active":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"device {row.name} is {row.status}; only active devices are exported")
    retention = getattr(services.settings.snapshots, row.environment).retention
    workflow_id = workflow_id_for(row.id, datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ"))
    try:
        client = await services.temporal()
        await client.start_workflow(
            DeviceSnapshotWorkflow.run,
            DeviceSnapshotInput(device_ids=[row.id], reason="manual", retention=retention),
            id=workflow_id, task_queue=services.settings.temporal.task_queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(ENVIRONMENT, row.environment)]),
            static_summary=f"Configuration snapshot of {row.name}")
    except WorkflowAlreadyStartedError:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"workflow {workflow_id} already exists; retry in a moment") from None
    except (RPCError, RuntimeError) as err:
        log.warning("snapshot workflow did not start", workflow_id=workflow_id, device_id=row.id,
                    error=str(err))
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail=f"workflow {workflow_id} did not start because Temporal at "
                                   f"{services.settings.temporal.address} failed; retry once it "
                                   "is back") from None
    await record_audit(services.db, actor=principal.subject, actor_issuer=principal.issuer,
                       role=principal.role_label, action="device.snapshot", result="started",
                       device_ids=[row.id], workflow_id=workflow_id)
    # This event replaces the generic one the audit middleware would write for the request.
    request.state.audit_recorded = True
    return {"device_id": row.id, "workflow_id": workflow_id}
