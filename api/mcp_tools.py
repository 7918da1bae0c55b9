"""The MCP tools: read tools for devices, and plan create / apply / status.

Every tool call is wrapped by ``ToolRunner``: it checks the tool is switched on, times the call,
turns model-fixable problems into ``ToolError`` messages that name what to change, logs one line
and writes one audit event.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import structlog
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from api.authz import AccessDenied, ToolCall, tool_access
from api.catalog import ToolCatalog
from api.plan_actions import (
    ActionRejected,
    RolloutOptions,
    apply_plan,
    approve_plan,
    control_plan,
    create_plan,
    plan_progress,
)
from api.ratelimit import RateLimited
from api.security import principal_from_access_token
from api.services import Services
from api.targeting import TargetedChange, expand_changes, has_target, resolve_authorized_targets
from api.tools_paged import register_paged_tools
from inventory.devices import DeviceNotFound, DeviceUnavailable
from planning.model import ChangeRequest
from planning.validation import PlanValidationError
from routeros.errors import DeviceError, UnknownPath
from storage.audit import record_audit
from storage.incident import disabled_tools
from storage.models import Device
from storage.plans import get_plan
from tikflow.metrics import TOOL_CALLS, TOOL_SECONDS

log = structlog.get_logger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_LIMIT = 200
MAX_LIMIT = 5000


class ItemList(BaseModel):
    items: list[dict[str, Any]]
    count: int = Field(description="Number of items returned")
    truncated: bool = Field(description="True when more items exist than the limit allowed")


class Overview(BaseModel):
    device: dict[str, Any]
    identity: str | None
    resource: dict[str, str]
    routerboard: dict[str, str] | None


class PlanCreated(BaseModel):
    plan_id: str
    plan_hash: str
    risk: dict[str, Any]
    warnings: list[str] = Field(default_factory=list, description="Likely mistakes worth a second look")
    approval: str = Field(description="Approval policy: auto, one approver, or four_eyes")
    devices: list[dict[str, str]]
    diff: list[dict[str, Any]]


class PlanApplied(BaseModel):
    plan_id: str
    workflow_id: str
    status: str


class PlanStatus(BaseModel):
    plan_id: str
    status: str
    detail: str | None
    workflow_id: str | None
    temporal_ui: str | None
    steps: list[dict[str, Any]]
    approval: str = Field(description="auto, one or four_eyes")
    batches: list[dict[str, Any]] = Field(default_factory=list)
    approved_by: list[str] = Field(default_factory=list)
    paused: bool = False


def device_summary(device: Device) -> dict[str, Any]:
    return {
        "id": device.id,
        "name": device.name,
        "address": device.address,
        "port": device.port,
        "transport": device.transport,
        "environment": device.environment,
        "status": device.status,
        "version": device.version,
        "board": device.board,
        "tags": list(device.tags),
    }


class ToolRunner:
    """Registers tools with audit, switches and error translation around each call."""

    def __init__(self, server: MCPServer, services: Services) -> None:
        self.server = server
        self.services = services
        self.catalog = ToolCatalog()

    def tool(self, name: str, *, title: str, tier: str, annotations: ToolAnnotations,
             description: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        entry = self.catalog.add(name, title=title, tier=tier, description=description,
                                 read_only=bool(annotations.read_only_hint),
                                 destructive=bool(annotations.destructive_hint))

        def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
            @functools.wraps(fn)
            async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                entry.warn_if_deprecated()
                return await self._call(name, tier, fn, args, kwargs)

            self.server.add_tool(wrapper, name=name, title=title, description=entry.description,
                                 annotations=annotations, meta=entry.meta, structured_output=True)
            return wrapper

        return decorate

    async def _call(self, name: str, tier: str, fn: Callable[..., Awaitable[R]],
                    args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        principal = principal_from_access_token(get_access_token())
        request_id = uuid.uuid4().hex[:16]
        started = time.monotonic()
        result_label, detail, outcome = "ok", None, None
        bound = log.bind(tool=name, request_id=request_id, subject=principal.subject)
        access = tool_access(self.services)
        call = ToolCall(name=name, tier=tier, roles=principal.roles, subject=principal.subject)
        try:
            switched_off = await disabled_tools(self.services.db)
            if tier in self.services.settings.disabled_tiers or f"tier:{tier}" in switched_off:
                raise ToolError(f"all {tier}-tier tools are switched off by the operators; try "
                                "again later or ask an operator to enable them")
            if name in self.services.settings.disabled_tools or name in switched_off:
                raise ToolError(f"tool {name} is switched off by the operators; try again later "
                                "or ask an operator to enable it")
            with access.bind(call):
                await access.authorize_call(call, kwargs)
                outcome = await fn(*args, **kwargs)
            return outcome
        except AccessDenied as err:
            result_label, detail = "denied", str(err)
            raise ToolError(str(err)) from None
        except RateLimited as err:
            result_label, detail = "rate_limited", str(err)
            raise ToolError(str(err)) from None
        except ToolError as err:
            result_label, detail = "rejected", str(err)
            raise
        except (DeviceNotFound, DeviceUnavailable, PlanValidationError, ActionRejected) as err:
            result_label, detail = "rejected", str(err)
            raise ToolError(str(err)) from None
        except DeviceError as err:
            result_label, detail = "device_error", err.message
            hint = "" if err.retryable else " (retrying will not help; change the request)"
            raise ToolError(f"device error: {err.message}{hint}") from None
        except Exception:
            result_label, detail = "error", "internal error"
            bound.exception("tool failed")
            raise
        finally:
            duration_ms = int((time.monotonic() - started) * 1000)
            bound.info("tool call", result=result_label, duration_ms=duration_ms)
            TOOL_CALLS.labels(name, result_label).inc()
            TOOL_SECONDS.labels(name).observe(duration_ms / 1000)
            await record_audit(
                self.services.db, actor=principal.subject, actor_issuer=principal.issuer,
                role=principal.role_label, action=f"tool:{name}",
                arguments={key: _jsonable(value) for key, value in kwargs.items()},
                result=result_label, detail=detail, duration_ms=duration_ms, request_id=request_id,
                plan_id=_plan_id_of(kwargs, outcome), device_ids=call.device_ids,
                workflow_id=getattr(outcome, "workflow_id", None),
            )


def _plan_id_of(kwargs: dict[str, Any], outcome: Any) -> str | None:
    if "plan_id" in kwargs:
        return str(kwargs["plan_id"])
    return getattr(outcome, "plan_id", None)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


READ = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)
PLAN = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=False)
APPLY = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False, openWorldHint=True)


def register_tools(server: MCPServer, services: Services) -> ToolRunner:
    """Register tikflow's MCP tools on ``server`` and return the runner with their catalog."""
    runner = ToolRunner(server, services)

    async def read_rows(device_ref: str, path: str, *, where: dict[str, str] | None,
                        limit: int) -> ItemList:
        if not 1 <= limit <= MAX_LIMIT:
            raise ToolError(f"limit {limit} is out of range; use 1 to {MAX_LIMIT}")
        device = await services.inventory.find(device_ref)
        async with services.sessions.session(device) as client:
            rows = await client.print(path, where=where or None, limit=limit + 1)
        return ItemList(items=rows[:limit], count=min(len(rows), limit), truncated=len(rows) > limit)

    @runner.tool("device.list.v1", title="List devices", tier="read", annotations=READ,
                 description="List registered RouterOS devices with status, environment and version. "
                             "Filter by environment (lab, staging, prod) or status.")
    async def device_list(environment: str | None = None, status: str | None = None) -> ItemList:
        devices = await services.inventory.list(environment=environment, status=status)
        items = [device_summary(d) for d in devices]
        return ItemList(items=items, count=len(items), truncated=False)

    @runner.tool("system.get_overview.v1", title="Device overview", tier="read", annotations=READ,
                 description="Identity, RouterOS version, board, uptime and resources of one device.")
    async def system_overview(device: str) -> Overview:
        record = await services.inventory.find(device)
        async with services.sessions.session(record) as client:
            resource = await client.get("/system/resource")
            identity = (await client.get("/system/identity")).get("name")
            try:
                routerboard = await client.get("/system/routerboard")
            except UnknownPath:
                routerboard = None
        return Overview(device=device_summary(record), identity=identity, resource=resource,
                        routerboard=routerboard)

    @runner.tool("ip.address.list.v1", title="List IP addresses", tier="read", annotations=READ,
                 description="IPv4 addresses of a device. Optional equality filter on interface; "
                             f"at most `limit` items (default {DEFAULT_LIMIT}).")
    async def ip_address_list(device: str, interface: str | None = None,
                              limit: int = DEFAULT_LIMIT) -> ItemList:
        where = {"interface": interface} if interface else None
        return await read_rows(device, "/ip/address", where=where, limit=limit)

    register_paged_tools(runner, services)

    @runner.tool("firewall.filter.list.v1", title="List firewall filter rules", tier="read",
                 annotations=READ,
                 description="Firewall filter rules of a device in order. Optional equality filter "
                             f"on chain; at most `limit` items (default {DEFAULT_LIMIT}).")
    async def firewall_filter_list(device: str, chain: str | None = None,
                                   limit: int = DEFAULT_LIMIT) -> ItemList:
        where = {"chain": chain} if chain else None
        return await read_rows(device, "/ip/firewall/filter", where=where, limit=limit)

    @runner.tool("plan.create.v1", title="Create a change plan", tier="plan", annotations=PLAN,
                 description="Plan changes to one or more devices. Each change names a device (id or "
                             "name), a menu path such as /ip/address, an action (add, set, remove), "
                             "`where` to select existing items by property equality or .id, and "
                             "`values` to write. A change without a device is made on every target "
                             "device: give `devices` (ids or names), `tag` or `environment`, and each "
                             "device gets its own diff. Optional `rollout` sets canary, batch size and "
                             "health "
                             "checks for multi-device plans. Returns the plan id, its hash (needed to "
                             "apply), the risk with reasons, the approval policy, the devices touched "
                             "and a before/after diff. Nothing changes on any device until "
                             "plan.apply.v1.")
    async def plan_create(description: str, changes: list[TargetedChange],
                          rollout: RolloutOptions | None = None, devices: list[str] | None = None,
                          tag: str | None = None, environment: str | None = None) -> PlanCreated:
        principal = principal_from_access_token(get_access_token())
        targets: list[Device] = []
        if has_target(devices, tag, environment):
            targets = await resolve_authorized_targets(services.inventory, devices=devices, tag=tag,
                                                       environment=environment)
        requests = expand_changes(changes, targets)
        return PlanCreated(**await create_plan(services, principal, description, requests, rollout))

    async def store_plan(description: str, changes: list[ChangeRequest],
                         rollout: RolloutOptions | None) -> PlanCreated:
        principal = principal_from_access_token(get_access_token())
        return PlanCreated(**await create_plan(services, principal, description, changes, rollout))

    # Imported here: the typed tools module imports this one for ToolRunner and PlanCreated.
    from api.tools_typed import PlanHelpers, register_typed_tools

    register_typed_tools(runner, services, PlanHelpers(create=store_plan))

    @runner.tool("plan.apply.v1", title="Apply a plan", tier="apply", annotations=APPLY,
                 description="Apply a plan created by plan.create.v1, passing its plan_id and "
                             "plan_hash. Starts a durable workflow that waits for approval where the "
                             "environment's policy asks for it, snapshots each device, checks nothing "
                             "changed since planning, rolls out canary first then in batches, and "
                             "undoes every applied step if one fails. A plan is applied at most once. "
                             "Follow it with plan.status.v1.")
    async def plan_apply(plan_id: str, plan_hash: str) -> PlanApplied:
        principal = principal_from_access_token(get_access_token())
        return PlanApplied(**await apply_plan(services, principal, plan_id, plan_hash))

    @runner.tool("plan.approve.v1", title="Approve a plan", tier="apply", annotations=PLAN,
                 description="Approve a plan that waits for approval, passing the plan_hash you "
                             "reviewed. Needs the approver role; in prod the author cannot approve.")
    async def plan_approve(plan_id: str, plan_hash: str, note: str | None = None) -> dict[str, Any]:
        principal = principal_from_access_token(get_access_token())
        return await approve_plan(services, principal, plan_id, plan_hash, note)

    for action, verb in (("pause", "Pause"), ("resume", "Resume"), ("abort", "Abort")):
        _register_control(runner, services, action, verb)

    @runner.tool("plan.status.v1", title="Plan status", tier="read", annotations=READ,
                 description="Status of a plan (planned, awaiting_approval, applying, applied, "
                             "rolling_back, rolled_back, failed, aborted, needs_operator) with its "
                             "steps, rollout batches and approvals.")
    async def plan_status(plan_id: str) -> PlanStatus:
        found = await get_plan(services.db, plan_id)
        if found is None:
            raise ToolError(f"plan {plan_id} does not exist; check the plan_id that plan.create.v1 returned")
        plan, changes = found
        steps = [{"seq": c.seq, "device_id": c.device_id, "path": c.path, "action": c.action,
                  "status": c.status, "error": c.error} for c in changes]
        status, detail, progress = plan.status, plan.status_detail, dict(plan.progress or {})
        if plan.workflow_id and status not in ("applied", "rolled_back", "failed", "aborted"):
            live = await plan_progress(services, plan.id)
            if live is not None:
                status, detail, progress = live.status, live.detail, live.model_dump(mode="json")
        ui = services.settings.temporal.ui_url
        link = (f"{ui}/namespaces/{services.settings.temporal.namespace}/workflows/{plan.workflow_id}"
                if plan.workflow_id else None)
        return PlanStatus(plan_id=plan.id, status=status, detail=detail, workflow_id=plan.workflow_id,
                          temporal_ui=link, steps=steps, approval=plan.approval_mode,
                          batches=progress.get("batches", []),
                          approved_by=progress.get("approved_by", []),
                          paused=bool(progress.get("paused", False)))

    return runner


def _register_control(runner: ToolRunner, services: Services, action: str, verb: str) -> None:
    descriptions = {
        "pause": "Pause a running plan at its next step boundary.",
        "resume": "Resume a paused plan.",
        "abort": "Abort a running plan: it stops at the next step boundary and undoes every "
                 "change it made.",
    }

    async def control(plan_id: str, reason: str | None = None) -> dict[str, Any]:
        principal = principal_from_access_token(get_access_token())
        return await control_plan(services, principal, plan_id, action, reason)

    control.__name__ = f"plan_{action}"
    annotations = APPLY if action == "abort" else PLAN
    runner.tool(f"plan.{action}.v1", title=f"{verb} a plan", tier="apply", annotations=annotations,
                description=descriptions[action])(control)
