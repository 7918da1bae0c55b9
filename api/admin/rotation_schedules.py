"""Periodic credential rotation: one Temporal Schedule per environment.

Schedule id ``credential-rotation:{environment}``. Each firing starts the
``CredentialRotateEnvironment`` workflow, which rotates every active device of that environment
through its own ``credential-rotate`` workflow. A firing that finds the previous one still
running is skipped.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from api.admin.devices import Environment, _audit
from api.deps import ServicesDep, require_role
from api.security import Principal
from api.services import Services
from workflows.device_lifecycle import EnvironmentRotationWorkflow
from workflows.models import EnvironmentRotationInput

router = APIRouter(prefix="/rotation-schedules", tags=["devices"])
ENVIRONMENTS = ("lab", "staging", "prod")


class RotationSchedule(BaseModel):
    """How often every active device of an environment gets new credentials."""

    model_config = ConfigDict(extra="forbid")

    every_days: int = Field(ge=1, le=365, description="Days between two rotations")
    policy: Literal["same-user", "new-user"] = "new-user"


def schedule_id(environment: str) -> str:
    return f"credential-rotation:{environment}"


def _schedule(services: Services, environment: str, body: RotationSchedule) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            EnvironmentRotationWorkflow.run,
            EnvironmentRotationInput(environment=environment, policy=body.policy),
            id=f"credential-rotate-env:{environment}",
            task_queue=services.settings.temporal.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=body.every_days))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def _describe(services: Services, environment: str) -> dict[str, Any] | None:
    client = await services.temporal()
    try:
        description = await client.get_schedule_handle(schedule_id(environment)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    action = description.schedule.action
    arguments = action.args if isinstance(action, ScheduleActionStartWorkflow) else []
    intervals = description.schedule.spec.intervals
    next_runs = description.info.next_action_times[:1]
    return {
        "environment": environment,
        "schedule_id": schedule_id(environment),
        "every_days": intervals[0].every.days if intervals else None,
        "policy": _policy_of(arguments),
        "paused": description.schedule.state.paused,
        "next_run": next_runs[0].isoformat() if next_runs else None,
        "runs": description.info.num_actions,
    }


def _policy_of(arguments: Any) -> str | None:
    """Read the policy from the schedule's stored workflow argument, whatever form it came back in."""
    if not arguments:
        return None
    first = arguments[0]
    if isinstance(first, EnvironmentRotationInput):
        return first.policy
    data = getattr(first, "data", None)
    if data:
        return json.loads(data).get("policy")
    return None


@router.get("")
async def list_rotation_schedules(
    services: ServicesDep, _: Annotated[Principal, Depends(require_role("reader", "operator", "admin"))],
) -> dict[str, Any]:
    """List the rotation schedule of each environment that has one."""
    items = [item for item in [await _describe(services, env) for env in ENVIRONMENTS] if item]
    return {"items": items}


@router.put("/{environment}")
async def set_rotation_schedule(
    environment: Environment, body: RotationSchedule, services: ServicesDep,
    principal: Annotated[Principal, Depends(require_role("admin"))],
) -> dict[str, Any]:
    """Create or replace the rotation schedule of an environment."""
    client = await services.temporal()
    schedule = _schedule(services, environment, body)
    try:
        await client.create_schedule(schedule_id(environment), schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(schedule_id(environment)).update(replace)
    await _audit(services, principal, "rotation_schedule.set", "ok", None,
                 body.model_dump() | {"environment": environment})
    return await _describe(services, environment) or {}


@router.post("/{environment}/trigger", status_code=status.HTTP_202_ACCEPTED)
async def trigger_rotation_schedule(
    environment: Environment, services: ServicesDep,
    principal: Annotated[Principal, Depends(require_role("admin"))],
) -> dict[str, Any]:
    """Run the environment's rotation now, outside its interval."""
    if await _describe(services, environment) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"environment {environment} has no rotation schedule; create one first")
    await (await services.temporal()).get_schedule_handle(schedule_id(environment)).trigger()
    await _audit(services, principal, "rotation_schedule.trigger", "ok", None, {"environment": environment})
    return {"environment": environment, "workflow_id": f"credential-rotate-env:{environment}"}


@router.delete("/{environment}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rotation_schedule(
    environment: Environment, services: ServicesDep,
    principal: Annotated[Principal, Depends(require_role("admin"))],
) -> None:
    """Stop periodic rotation for an environment; rotations already running finish."""
    if await _describe(services, environment) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"environment {environment} has no rotation schedule")
    await (await services.temporal()).get_schedule_handle(schedule_id(environment)).delete()
    await _audit(services, principal, "rotation_schedule.delete", "ok", None, {"environment": environment})
