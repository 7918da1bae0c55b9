"""The MCP tools: read tools for devices, and plan create / apply / status.

Every tool call is wrapped by ``ToolRunner``: it checks the tool is switched on, times the call,
turns model-fixable problems into ``ToolError`` messages that say what to change, logs one line
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
from temporalio.client import WorkflowFailureError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api.authz import AccessDenied, ToolCall, tool_access
from api.catalog import ToolCatalog
from api.ratelimit import RateLimited
from api.security import principal_from_access_token
from api.services import Services
from api.tools_paged import register_paged_tools
from inventory.devices import DeviceNotFound, DeviceUnavailable
from planning.model import ChangeRequest
from planning.planner import PlanDevice, build_plan
from planning.validation import PlanValidationError
from routeros.errors import DeviceError, UnknownPath
from storage.audit import record_audit
from storage.models import Device
from storage.plans import claim_for_apply, get_plan, save_plan
from workflows.models import PlanApplyInput, PlanProgress
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
            if name in self.services.settings.disabled_tools:
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
        except (DeviceNotFound, DeviceUnavailable, PlanValidationError) as err:
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
                             "`values` to write. Returns the plan id, its hash (needed to apply), the "
                             "risk with reasons, the devices touched and a before/after diff. Nothing "
                             "changes on any device until plan.apply.v1.")
    async def plan_create(description: str, changes: list[ChangeRequest]) -> PlanCreated:
        principal = principal_from_access_token(get_access_token())
        plan = await build_plan(description, changes, lookup_device=lookup_device,
                                read_table=read_table)
        stored = await save_plan(services.db, plan, author=principal.subject)
        return PlanCreated(
            plan_id=stored.id,
            plan_hash=stored.plan_hash,
            risk=plan.risk.model_dump(mode="json"),
            devices=[{"id": d.device_id, "name": d.device_name, "environment": d.environment}
                     for d in plan.diff],
            diff=[d.model_dump(mode="json") for d in plan.diff],
        )

    async def lookup_device(ref: str) -> PlanDevice:
        device = await services.inventory.find(ref)
        if device.status != "active":
            raise PlanValidationError(f"device {device.name} is {device.status}; only active devices "
                                      "can be changed")
        return PlanDevice(id=device.id, name=device.name, environment=device.environment,
                          address=device.address)

    async def read_table(plan_device: PlanDevice, path: str) -> list[dict[str, str]]:
        device = await services.inventory.find(plan_device.id)
        try:
            async with services.sessions.session(device) as client:
                return await client.print(path)
        except UnknownPath:
            raise PlanValidationError(
                f"{path} is not a menu on {device.name}; check the spelling, e.g. /ip/address, "
                "/ip/firewall/filter, /ip/route"
            ) from None

    @runner.tool("plan.apply.v1", title="Apply a plan", tier="apply", annotations=APPLY,
                 description="Apply a plan created by plan.create.v1, passing its plan_id and "
                             "plan_hash. Starts a durable workflow that snapshots each device, checks "
                             "nothing changed since planning, applies each change and rolls back "
                             "every applied step if one fails. A plan is applied at most once. "
                             "Follow it with plan.status.v1.")
    async def plan_apply(plan_id: str, plan_hash: str) -> PlanApplied:
        principal = principal_from_access_token(get_access_token())
        workflow_id = workflow_id_for(plan_id)
        refusal = await claim_for_apply(services.db, plan_id, plan_hash, workflow_id)
        if refusal:
            raise ToolError(refusal)
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
                static_summary=f"Apply plan {plan_id} ({plan.risk} risk) to "
                               f"{len(plan.device_ids)} device(s)",
                static_details=f"{plan.description}\n\nRequested by {principal.subject}.",
            )
        except WorkflowAlreadyStartedError:
            raise ToolError(f"plan {plan_id} was already applied; create a new plan") from None
        return PlanApplied(plan_id=plan_id, workflow_id=workflow_id, status="applying")

    @runner.tool("plan.status.v1", title="Plan status", tier="read", annotations=READ,
                 description="Status of a plan (planned, applying, applied, rolling_back, rolled_back, "
                             "failed, needs_operator) with its steps.")
    async def plan_status(plan_id: str) -> PlanStatus:
        found = await get_plan(services.db, plan_id)
        if found is None:
            raise ToolError(f"plan {plan_id} does not exist; check the plan_id that plan.create.v1 returned")
        plan, changes = found
        steps = [{"seq": c.seq, "device_id": c.device_id, "path": c.path, "action": c.action,
                  "status": c.status, "error": c.error} for c in changes]
        status, detail = plan.status, plan.status_detail
        if plan.workflow_id and status not in ("applied", "rolled_back", "failed", "aborted"):
            progress = await _query_progress(services, plan.workflow_id)
            if progress is not None:
                status, detail = progress.status, progress.detail
        ui = services.settings.temporal.ui_url
        link = (f"{ui}/namespaces/{services.settings.temporal.namespace}/workflows/{plan.workflow_id}"
                if plan.workflow_id else None)
        return PlanStatus(plan_id=plan.id, status=status, detail=detail, workflow_id=plan.workflow_id,
                          temporal_ui=link, steps=steps)

    return runner


async def _query_progress(services: Services, workflow_id: str) -> PlanProgress | None:
    try:
        client = await services.temporal()
        handle = client.get_workflow_handle(workflow_id)
        return await handle.query(PlanApplyWorkflow.progress)
    except (RPCError, WorkflowFailureError, RuntimeError) as err:
        log.warning("plan progress query failed", workflow_id=workflow_id, error=str(err))
        return None

