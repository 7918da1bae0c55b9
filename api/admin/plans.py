"""Plans in the admin API: list and read, with the same data the MCP tools return."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select

from api.deps import PrincipalDep, ServicesDep
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
    return plan_public(plan) | {
        "diff": plan.diff,
        "steps": [{"seq": c.seq, "device_id": c.device_id, "path": c.path, "action": c.action,
                   "where": c.selector, "values": c.values, "status": c.status, "error": c.error}
                  for c in changes],
    }
