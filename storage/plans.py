"""Store resolved plans and read them back for the API."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from planning.model import ResolvedPlan
from storage.db import Database
from storage.models import Plan, PlanChange


def new_plan_id() -> str:
    return "plan-" + secrets.token_hex(6)


async def save_plan(db: Database, plan: ResolvedPlan, *, author: str, approval_mode: str = "auto",
                    rollout: dict | None = None) -> Plan:
    """Persist a resolved plan with status ``planned`` and return the stored row."""
    row = Plan(
        approval_mode=approval_mode,
        rollout=rollout or {},
        id=new_plan_id(),
        description=plan.description,
        author=author,
        plan_hash=plan.content_hash(),
        status="planned",
        risk=plan.risk.level,
        risk_reasons=list(plan.risk.reasons),
        # Plan order: the rollout takes its canary and batches from the front of this list.
        device_ids=list(dict.fromkeys(c.device_id for c in plan.changes)),
        environments=sorted({d.environment for d in plan.diff}),
        fingerprints=plan.fingerprints,
        diff=[d.model_dump(mode="json") for d in plan.diff],
    )
    async with db.session() as session:
        session.add(row)
        await session.flush()
        for change in plan.changes:
            session.add(
                PlanChange(
                    plan_id=row.id,
                    seq=change.seq,
                    device_id=change.device_id,
                    path=change.path,
                    action=change.action,
                    selector=change.where,
                    values=change.values,
                    targets=[t.model_dump(mode="json") for t in change.targets],
                )
            )
    return row


async def get_plan(db: Database, plan_id: str) -> tuple[Plan, list[PlanChange]] | None:
    async with db.session() as session:
        plan = await session.get(Plan, plan_id)
        if plan is None:
            return None
        changes = (await session.scalars(
            select(PlanChange).where(PlanChange.plan_id == plan_id).order_by(PlanChange.seq)
        )).all()
        return plan, list(changes)


async def claim_for_apply(db: Database, plan_id: str, plan_hash: str, workflow_id: str) -> str | None:
    """Move a plan from ``planned`` to ``applying``; return why not when it cannot move."""
    async with db.session() as session:
        plan = await session.get(Plan, plan_id, with_for_update=True)
        if plan is None:
            return f"plan {plan_id} does not exist; create one with plan.create.v1"
        if plan.plan_hash != plan_hash:
            return (f"plan_hash does not match plan {plan_id}; pass the plan_hash that "
                    "plan.create.v1 returned")
        if plan.status != "planned":
            return (f"plan {plan_id} is {plan.status} and cannot be applied again; "
                    "create a new plan for further changes")
        plan.status = "applying"
        plan.workflow_id = workflow_id
    return None
