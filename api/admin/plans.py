"""Plans in the admin API: list and read, with the same data the MCP tools return."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.authz import AccessDenied, authorize_plan
from api.deps import PrincipalDep, ServicesDep, require_role
from api.plan_actions import (
    ActionRejected,
    RolloutOptions,
    apply_plan,
    approve_plan,
    control_plan,
    create_plan,
    plan_progress,
)
from api.security import Principal
from inventory.devices import DeviceNotFound
from planning.model import ChangeRequest
from planning.validation import PlanValidationError
from storage.models import Plan
from storage.plans import get_plan

router = APIRouter(prefix="/plans", tags=["plans"])


def plan_public(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "description": plan.description,
        "author": plan.author,
        "plan_hash": plan.plan_hash,
        "status": plan.status,
        "status_detail": plan.status_detail,
        "risk": plan.risk,
        "risk_reasons": plan.risk_reasons,
        "device_ids": plan.device_ids,
        "environments": plan.environments,
        "workflow_id": plan.workflow_id,
        "approval": plan.approval_mode,
        "rollout": plan.rollout,
        "created_at": plan.created_at.isoformat(),
        "updated_at": plan.updated_at.isoformat(),
    }


@router.get("")
async def list_plans(services: ServicesDep, _: PrincipalDep,
                     status: str | None = None, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
    """List plans, newest first."""
    async with services.db.session() as session:
        query = select(Plan).order_by(Plan.created_at.desc()).limit(limit)
        if status:
            query = query.where(Plan.status == status)
        plans = (await session.scalars(query)).all()
    return {"items": [plan_public(p) for p in plans]}


@router.get("/{plan_id}")
async def read_plan(plan_id: str, services: ServicesDep, _: PrincipalDep) -> dict[str, Any]:
    """Read one plan with its diff and steps."""
    found = await get_plan(services.db, plan_id)
    if found is None:
        raise HTTPException(404, detail=f"plan {plan_id} does not exist")
    plan, changes = found
    progress = dict(plan.progress or {})
    if plan.workflow_id and plan.status not in ("applied", "rolled_back", "failed", "aborted"):
        live = await plan_progress(services, plan_id)
        if live is not None:
            progress = live.model_dump(mode="json")
    return plan_public(plan) | {
        "progress": progress,
        "diff": plan.diff,
        "steps": [{"seq": c.seq, "device_id": c.device_id, "path": c.path, "action": c.action,
                   "where": c.selector, "values": c.values, "status": c.status, "error": c.error}
                  for c in changes],
    }


class PlanCreate(BaseModel):
    description: str
    changes: list[ChangeRequest]
    rollout: RolloutOptions | None = None


class PlanHash(BaseModel):
    plan_hash: str = Field(description="The hash returned when the plan was created")
    note: str | None = None


class ControlReason(BaseModel):
    reason: str | None = None


async def _authorize(services, principal: Principal, plan_id: str, tier: str, what: str) -> None:
    """Apply the role x tier x environment matrix to every environment the plan touches."""
    try:
        await authorize_plan(services, principal.roles, plan_id, tier, what=what)
    except AccessDenied as err:
        raise HTTPException(403, detail=str(err)) from None


def _rejected(err: ActionRejected | PlanValidationError | DeviceNotFound) -> HTTPException:
    code = err.status_code if isinstance(err, ActionRejected) else (
        404 if isinstance(err, DeviceNotFound) else 422)
    return HTTPException(code, detail=str(err))


@router.post("", status_code=201)
async def create_plan_route(body: PlanCreate, services: ServicesDep,
                            principal: Annotated[Principal, Depends(require_role("operator", "admin"))],
                            ) -> dict[str, Any]:
    """Create a plan; nothing changes on any device until it is applied."""
    try:
        return await create_plan(services, principal, body.description, body.changes, body.rollout)
    except (ActionRejected, PlanValidationError, DeviceNotFound) as err:
        raise _rejected(err) from None


@router.post("/{plan_id}/apply", status_code=202)
async def apply_plan_route(plan_id: str, body: PlanHash, services: ServicesDep,
                           principal: Annotated[Principal, Depends(require_role("operator", "admin"))],
                           ) -> dict[str, Any]:
    """Start the plan's apply workflow, which waits for approval where the policy requires it."""
    await _authorize(services, principal, plan_id, "apply", f"applying plan {plan_id}")
    try:
        return await apply_plan(services, principal, plan_id, body.plan_hash)
    except ActionRejected as err:
        raise _rejected(err) from None


@router.post("/{plan_id}/approve")
async def approve_plan_route(plan_id: str, body: PlanHash, services: ServicesDep,
                             principal: Annotated[Principal, Depends(require_role("approver", "admin"))],
                             ) -> dict[str, Any]:
    """Approve a plan waiting for approval; the hash binds the approval to what was reviewed."""
    await _authorize(services, principal, plan_id, "apply", f"approving plan {plan_id}")
    try:
        return await approve_plan(services, principal, plan_id, body.plan_hash, body.note)
    except ActionRejected as err:
        raise _rejected(err) from None


@router.post("/{plan_id}/{action}")
async def control_plan_route(plan_id: str, action: Literal["pause", "resume", "abort"],
                             services: ServicesDep,
                             principal: Annotated[Principal, Depends(require_role("operator", "admin"))],
                             body: ControlReason | None = None) -> dict[str, Any]:
    """Pause, resume or abort a running plan; abort undoes what the plan changed."""
    await _authorize(services, principal, plan_id, "apply", f"{action} of plan {plan_id}")
    try:
        return await control_plan(services, principal, plan_id, action, body.reason if body else None)
    except ActionRejected as err:
        raise _rejected(err) from None
