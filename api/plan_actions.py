"""Plan and incident actions shared by the MCP tools, the admin API and (through it) the CLI.

Each function raises ``ActionRejected`` with a message that states what to change. The MCP layer
turns it into a tool error, and the admin API into a 4xx response.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from pydantic import BaseModel, Field
from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.security import Principal
from api.services import Services
from planning.model import ChangeRequest
from planning.planner import PlanDevice, build_plan
from planning.validation import PlanValidationError
from routeros.errors import UnknownPath
from storage.incident import (
    PAUSE_KEY,
    TIER_PREFIX,
    TOOL_PREFIX,
    is_paused,
    read_switches,
    set_switch,
)
from storage.plans import claim_for_apply, get_plan, save_plan
from workflows.models import ApproveInput, ControlInput, PlanApplyInput, PlanProgress
from workflows.plan_apply import (
    DEVICE_IDS,
    ENVIRONMENT,
    PHASE,
    PLAN_ID,
    RISK_LEVEL,
    PlanApplyWorkflow,
    workflow_id_for,
)

log = structlog.get_logger(__name__)
STRICTNESS = {"auto": 0, "one": 1, "four_eyes": 2}
RUNNING_PLANS_QUERY = 'WorkflowType = "PlanApply" AND ExecutionStatus = "Running"'


class ActionRejected(Exception):
    """The action cannot run as requested; the message states what to change."""

    def __init__(self, message: str, status_code: int = 409) -> None:
        super().__init__(message)
        self.status_code = status_code


def approval_mode(services: Services, environments: list[str]) -> str:
    """Return the strictest approval policy among the environments a plan touches."""
    policy = services.settings.plans.approval_policy
    modes = [policy.get(env, "four_eyes") for env in environments] or ["auto"]
    mode = max(modes, key=lambda m: STRICTNESS.get(m, 2))
    if mode == "auto" and services.settings.plans.require_approval:
        return "one"
    return mode


class RolloutOptions(BaseModel):
    """Rollout options of a multi-device plan; defaults come from the settings."""

    canary: int | None = Field(None, ge=0, description="Devices changed alone first")
    batch_size: int | None = Field(None, ge=1, description="Devices per batch after the canary")
    max_parallel: int | None = Field(None, ge=1, description="Devices changed at the same time")
    on_failure: str = Field("rollback_batch", pattern="^(rollback_batch|rollback_all)$",
                            description="rollback_batch keeps earlier, healthy batches applied")
    health_checks: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Reads after each batch: {path, where}; each must match at least one item",
    )
    allow_without_dead_man: bool = Field(
        False, description="Accept a high-risk change on a device that cannot run scheduler jobs")
    dead_man_seconds: int | None = Field(
        None, ge=10, le=3600, description="Seconds before the device-side restore job fires")


async def create_plan(services: Services, principal: Principal, description: str,
                      changes: list[ChangeRequest], rollout: RolloutOptions | None = None) -> dict[str, Any]:
    """Resolve, score and store a plan; return what plan.create.v1 returns."""
    plan = await build_plan(description, changes,
                            lookup_device=lambda ref: lookup_plan_device(services, ref),
                            read_table=lambda device, path: read_plan_table(services, device, path))
    environments = sorted({d.environment for d in plan.diff})
    mode = approval_mode(services, environments)
    options = rollout or RolloutOptions()
    defaults = services.settings.plans
    stored_rollout = {
        "canary": defaults.canary if options.canary is None else options.canary,
        "batch_size": options.batch_size or defaults.batch_size,
        "max_parallel": options.max_parallel or defaults.max_parallel,
        "on_failure": options.on_failure,
        "health_checks": options.health_checks,
        "allow_without_dead_man": options.allow_without_dead_man,
        "dead_man_seconds": options.dead_man_seconds or defaults.dead_man_seconds,
    }
    stored = await save_plan(services.db, plan, author=principal.subject, approval_mode=mode,
                             rollout=stored_rollout)
    return {
        "plan_id": stored.id,
        "plan_hash": stored.plan_hash,
        "risk": plan.risk.model_dump(mode="json"),
        "approval": mode,
        "devices": [{"id": d.device_id, "name": d.device_name, "environment": d.environment}
                    for d in plan.diff],
        "diff": [d.model_dump(mode="json") for d in plan.diff],
        "warnings": list(plan.warnings),
    }


async def lookup_plan_device(services: Services, ref: str) -> PlanDevice:
    device = await services.inventory.find(ref)
    if device.status != "active":
        raise PlanValidationError(f"device {device.name} is {device.status}; only active devices "
                                  "can be changed")
    return PlanDevice(id=device.id, name=device.name, environment=device.environment,
                      address=device.address, port=device.port, transport=device.transport,
                      username=await services.inventory.login_username(device.id))


async def read_plan_table(services: Services, plan_device: PlanDevice, path: str) -> list[dict[str, str]]:
    device = await services.inventory.find(plan_device.id)
    try:
        async with services.sessions.session(device) as client:
            return await client.print(path)
    except UnknownPath:
        raise PlanValidationError(
            f"{path} is not a menu on {device.name}; check the spelling, e.g. /ip/address, "
            "/ip/firewall/filter, /ip/route"
        ) from None


async def apply_plan(services: Services, principal: Principal, plan_id: str, plan_hash: str) -> dict[str, Any]:
    """Start the PlanApply workflow of a planned plan, once."""
    if await is_paused(services.db):
        raise ActionRejected("plan/apply is paused for an incident, so new applies are rejected until "
                            "an operator runs `tikflow incident resume`", status_code=423)
    workflow_id = workflow_id_for(plan_id)
    rejection = await claim_for_apply(services.db, plan_id, plan_hash, workflow_id)
    if rejection:
        raise ActionRejected(rejection, status_code=404 if "does not exist" in rejection else 409)
    found = await get_plan(services.db, plan_id)
    assert found is not None
    plan, _ = found
    client = await services.temporal()
    try:
        await client.start_workflow(
            PlanApplyWorkflow.run,
            PlanApplyInput(plan_id=plan_id, plan_hash=plan_hash, requested_by=principal.subject),
            id=workflow_id,
            task_queue=services.settings.temporal.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(PLAN_ID, plan_id),
                SearchAttributePair(DEVICE_IDS, list(plan.device_ids)),
                SearchAttributePair(ENVIRONMENT, ",".join(plan.environments)),
                SearchAttributePair(RISK_LEVEL, plan.risk),
                SearchAttributePair(PHASE, "queued"),
            ]),
            static_summary=f"Apply plan {plan_id} ({plan.risk} risk) to {len(plan.device_ids)} device(s)",
            static_details=f"{plan.description}\n\nRequested by {principal.subject}; "
                           f"approval policy {plan.approval_mode}.",
        )
    except WorkflowAlreadyStartedError:
        raise ActionRejected(f"plan {plan_id} was already applied; create a new plan") from None
    status = "awaiting_approval" if plan.approval_mode != "auto" else "applying"
    return {"plan_id": plan_id, "workflow_id": workflow_id, "status": status}


async def approve_plan(services: Services, principal: Principal, plan_id: str, plan_hash: str,
                       note: str | None = None) -> dict[str, Any]:
    """Send the approval update; the workflow's validator checks hash, role and four-eyes."""
    handle = await _running_handle(services, plan_id)
    try:
        result = await handle.execute_update(
            PlanApplyWorkflow.approve,
            ApproveInput(plan_hash=plan_hash, approver=principal.subject,
                         roles=sorted(principal.roles), note=note),
        )
    except WorkflowUpdateFailedError as err:
        reason = getattr(err.cause, "message", None) or str(err.cause or err)
        raise ActionRejected(f"approval rejected: {reason}", status_code=403) from None
    log.info("plan approved", plan_id=plan_id, approver=principal.subject)
    return {"plan_id": plan_id, "approved_by": result.approved_by}


async def control_plan(services: Services, principal: Principal, plan_id: str, action: str,
                       reason: str | None = None) -> dict[str, Any]:
    """Send pause, resume or abort to a running plan."""
    if action not in ("pause", "resume", "abort"):
        raise ActionRejected(f"unknown action {action!r}; use pause, resume or abort", status_code=400)
    handle = await _running_handle(services, plan_id)
    signal = {"pause": PlanApplyWorkflow.pause, "resume": PlanApplyWorkflow.resume,
              "abort": PlanApplyWorkflow.abort}[action]
    await handle.signal(signal, ControlInput(by=principal.subject, reason=reason))
    log.info("plan signalled", plan_id=plan_id, signal=action, by=principal.subject)
    return {"plan_id": plan_id, "signal": action}


async def plan_progress(services: Services, plan_id: str) -> PlanProgress | None:
    """Query the running workflow; None when it has no worker or has ended."""
    found = await get_plan(services.db, plan_id)
    if found is None or not found[0].workflow_id:
        return None
    try:
        client = await asyncio.wait_for(services.temporal(), timeout=5)
        handle = client.get_workflow_handle(found[0].workflow_id)
        return await asyncio.wait_for(handle.query(PlanApplyWorkflow.progress), timeout=5)
    except (RPCError, RuntimeError, TimeoutError) as err:
        log.warning("plan progress query failed", plan_id=plan_id, error=str(err))
        return None


async def _running_handle(services: Services, plan_id: str):
    found = await get_plan(services.db, plan_id)
    if found is None:
        raise ActionRejected(f"plan {plan_id} does not exist", status_code=404)
    plan, _ = found
    if not plan.workflow_id:
        raise ActionRejected(f"plan {plan_id} has not been applied yet; apply it first")
    client = await services.temporal()
    handle = client.get_workflow_handle(plan.workflow_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ActionRejected(f"plan {plan_id} has no workflow", status_code=404) from None
        raise
    if description.status is None or description.status.name != "RUNNING":
        raise ActionRejected(f"plan {plan_id} is {plan.status}; only a running plan takes this action")
    return handle


async def incident_status(services: Services) -> dict[str, Any]:
    switches = await read_switches(services.db)
    pause = next((s for s in switches if s.key == PAUSE_KEY), None)
    configured = sorted(services.settings.disabled_tools)
    return {
        "paused": bool(pause and pause.engaged),
        "pause": _switch_public(pause) if pause else None,
        "disabled_tools": sorted({s.key.removeprefix(TOOL_PREFIX) for s in switches
                                  if s.engaged and s.key.startswith(TOOL_PREFIX)} | set(configured)),
        "disabled_tiers": sorted({s.key.removeprefix(TIER_PREFIX) for s in switches
                                  if s.engaged and s.key.startswith(TIER_PREFIX)}
                                 | set(services.settings.disabled_tiers)),
        "tool_switches": [_switch_public(s) for s in switches
                          if s.key.startswith((TOOL_PREFIX, TIER_PREFIX))],
        "disabled_by_configuration": configured + [f"tier:{t}" for t in services.settings.disabled_tiers],
    }


def _switch_public(switch) -> dict[str, Any]:
    return {"key": switch.key, "engaged": switch.engaged, "reason": switch.reason,
            "changed_by": switch.changed_by, "changed_at": switch.changed_at.isoformat()}


async def set_incident_pause(services: Services, principal: Principal, *, paused: bool,
                             reason: str | None) -> dict[str, Any]:
    """Engage or release the global pause and signal every running plan/apply workflow."""
    await set_switch(services.db, PAUSE_KEY, engaged=paused, by=principal.subject, reason=reason)
    signalled, signal_error = 0, None
    control = ControlInput(by=principal.subject, reason=reason, incident=True)
    try:
        client = await asyncio.wait_for(services.temporal(), timeout=10)
        async for execution in client.list_workflows(RUNNING_PLANS_QUERY):
            handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
            try:
                await handle.signal(PlanApplyWorkflow.pause if paused else PlanApplyWorkflow.resume,
                                    control)
                signalled += 1
            except RPCError as err:
                # The workflow may have ended between the listing and the signal.
                log.warning("incident signal failed", workflow_id=execution.id, error=str(err))
    except (RPCError, RuntimeError, TimeoutError) as err:
        # The switch is stored, so new applies are rejected. Running plans were not signalled.
        signal_error = (f"Temporal is unreachable ({type(err).__name__}); running plans were not "
                        "signalled: run the same command again once Temporal answers")
        log.error("incident signal failed", error=str(err))
    action = "incident.pause" if paused else "incident.resume"
    # The caller's request is audited by the MCP tool runner or the admin API middleware.
    log.warning(action, by=principal.subject, reason=reason, workflows=signalled)
    return await incident_status(services) | {"signalled": signalled, "signal_error": signal_error}


async def set_tool_switch(services: Services, principal: Principal, tool: str, *, disabled: bool,
                          reason: str | None) -> dict[str, Any]:
    """Switch one tool, or a whole risk tier given as ``tier:<name>``, off or on."""
    if tool.startswith(TIER_PREFIX):
        tier = tool.removeprefix(TIER_PREFIX)
        if tier not in ("read", "plan", "apply", "admin"):
            raise ActionRejected(f"unknown risk tier {tier!r}; use read, plan, apply or admin",
                                status_code=400)
        key = tool
    else:
        key = TOOL_PREFIX + tool
    await set_switch(services.db, key, engaged=disabled, by=principal.subject, reason=reason)
    action = "incident.disable_tool" if disabled else "incident.enable_tool"
    log.warning(action, tool=tool, by=principal.subject, reason=reason)
    return await incident_status(services)
