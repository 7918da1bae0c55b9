"""Access control: roles from token claims and the role x risk tier x environment matrix.

The matrix decides every MCP tool call and which tools a caller's ``tools/list`` shows. A role
grants a tier in a set of device environments, and a caller holding several roles gets the
union. Profiles and config files override single cells through ``auth.matrix``. Admin API
routes name the roles they admit with ``api.deps.require_role``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.types import ListToolsResult

from api.ratelimit import RateLimiter
from inventory.devices import Inventory
from storage.db import Database
from storage.models import Device, Plan
from tikflow.settings import AuthSettings, Settings

ROLES: tuple[str, ...] = ("reader", "operator", "approver", "admin")
TIERS: tuple[str, ...] = ("read", "plan", "apply", "admin")
ENVIRONMENTS: tuple[str, ...] = ("lab", "staging", "prod")

_ALL = frozenset(ENVIRONMENTS)
_NONE: frozenset[str] = frozenset()

# The restrictive base; the lab profile widens operator apply to every environment.
DEFAULT_MATRIX: dict[str, dict[str, frozenset[str]]] = {
    "reader": {"read": _ALL, "plan": _NONE, "apply": _NONE, "admin": _NONE},
    "operator": {"read": _ALL, "plan": _ALL, "apply": frozenset({"lab", "staging"}), "admin": _NONE},
    "approver": {"read": _ALL, "plan": _ALL, "apply": _ALL, "admin": _NONE},
    "admin": {"read": _ALL, "plan": _ALL, "apply": _ALL, "admin": _ALL},
}


class AccessDenied(Exception):
    """The caller's roles do not allow this tier in this environment."""


@dataclass(frozen=True)
class AccessMatrix:
    """Role x tier -> allowed device environments."""

    cells: Mapping[str, Mapping[str, frozenset[str]]]

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> AccessMatrix:
        """Build the matrix from the defaults with the configured overrides applied."""
        cells = {role: dict(tiers) for role, tiers in DEFAULT_MATRIX.items()}
        for role, tiers in auth.matrix.items():
            for tier, environments in tiers.items():
                cells[role][tier] = frozenset(environments)
        return cls(cells)

    def environments(self, roles: Iterable[str], tier: str) -> frozenset[str]:
        """Return the environments in which any of ``roles`` may use ``tier``."""
        allowed: set[str] = set()
        for role in roles:
            allowed |= self.cells.get(role, {}).get(tier, _NONE)
        return frozenset(allowed)

    def allows(self, roles: Iterable[str], tier: str, environment: str | None = None) -> bool:
        """Return True when ``roles`` may use ``tier``; in ``environment`` if one is given.

        Without an environment the question is whether the tier is usable anywhere, which
        decides if a tool is listed at all.
        """
        allowed = self.environments(roles, tier)
        if environment is None:
            return bool(allowed)
        return environment in allowed

    def check(self, roles: Iterable[str], tier: str, environment: str | None = None,
              *, what: str) -> None:
        """Raise ``AccessDenied`` with a message naming ``what`` unless ``allows`` holds."""
        roles = frozenset(roles)
        if self.allows(roles, tier, environment):
            return
        held = ", ".join(sorted(roles)) or "no tikflow role"
        where = f" on {environment} devices" if environment else ""
        needed = self.roles_for(tier, environment)
        hint = f"; ask for one of the roles: {', '.join(needed)}" if needed else ""
        raise AccessDenied(f"{what} needs {tier} access{where}, which your roles ({held}) "
                           f"do not grant{hint}")

    def roles_for(self, tier: str, environment: str | None) -> list[str]:
        """Return the roles that would allow ``tier`` (in ``environment``)."""
        return [role for role in ROLES if self.allows([role], tier, environment)]

    def rows(self) -> list[tuple[str, str, list[str]]]:
        """Return (role, tier, sorted environments) for every cell, in display order."""
        return [(role, tier, sorted(self.cells[role][tier], key=ENVIRONMENTS.index))
                for role in ROLES for tier in TIERS]


def roles_from_claims(claims: Mapping[str, Any], auth: AuthSettings) -> frozenset[str]:
    """Map the values of the configured role claims to tikflow roles.

    A claim may be a list of strings or one space-separated string (the OAuth ``scope``
    form). Nested claims are addressed with dots, e.g. ``realm_access.roles`` (Keycloak).
    """
    values: set[str] = set()
    for name in auth.role_claims:
        values |= _claim_values(_lookup(claims, name))
    return frozenset(role for role, granted_by in auth.role_map.items()
                     if values.intersection(granted_by))


def _lookup(claims: Mapping[str, Any], dotted: str) -> Any:
    value: Any = claims
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _claim_values(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list | tuple):
        return {item for item in value if isinstance(item, str)}
    return set()


# --- Enforcement for MCP tool calls -----------------------------------------------------------


@dataclass
class ToolCall:
    """The tool call being authorised; device ids collected here end up in its audit row."""

    name: str
    tier: str
    roles: frozenset[str]
    subject: str
    device_ids: list[str] = field(default_factory=list)


_current_call: ContextVar[tuple[ToolAccess, ToolCall] | None] = ContextVar("tikflow_tool_call",
                                                                          default=None)


class ToolAccess:
    """Matrix checks and rate limits around MCP tool calls, shared by the tools of one app."""

    def __init__(self, settings: Settings, db: Database, inventory: Inventory) -> None:
        self.settings = settings
        self.matrix = AccessMatrix.from_settings(settings.auth)
        self.limiter = RateLimiter(db)
        self.db = db
        self.inventory = inventory

    def visible(self, roles: Iterable[str], tier: str) -> bool:
        """Return True when a tool of ``tier`` belongs in this caller's ``tools/list``."""
        return self.matrix.allows(roles, tier)

    @contextmanager
    def bind(self, call: ToolCall) -> Iterator[ToolCall]:
        """Make ``call`` the current call, so ``authorize_device`` can find it."""
        token = _current_call.set((self, call))
        try:
            yield call
        finally:
            _current_call.reset(token)

    async def authorize_call(self, call: ToolCall, arguments: Mapping[str, Any]) -> None:
        """Check the tier, the caller's rate limit and every device the arguments name.

        Raises ``AccessDenied``, ``RateLimited`` or the inventory's ``DeviceNotFound``.
        """
        self.matrix.check(call.roles, call.tier, what=f"tool {call.name}")
        await self.limiter.hit(f"caller:{call.subject}", self.settings.auth.rate_limits.per_caller_per_minute,
                               subject=f"caller {call.subject}")
        for device in await self._devices_named_by(arguments):
            await self.authorize_device(call, device)
        plan = await self._plan_named_by(arguments)
        if plan is not None:
            call.device_ids.extend(d for d in plan.device_ids if d not in call.device_ids)
            for environment in plan.environments:
                self.matrix.check(call.roles, call.tier, environment,
                                  what=f"tool {call.name} on plan {plan.id}")

    async def authorize_device(self, call: ToolCall, device: Device) -> None:
        """Check the environment of one resolved device and count a hit against its limit."""
        first_use = device.id not in call.device_ids
        if first_use:
            # Recorded before the check, so a refused call's audit row names the device too.
            call.device_ids.append(device.id)
        self.matrix.check(call.roles, call.tier, device.environment,
                          what=f"tool {call.name} on device {device.name}")
        if first_use:
            await self.limiter.hit(f"device:{device.id}",
                                   self.settings.auth.rate_limits.per_device_per_minute,
                                   subject=f"device {device.name}")

    async def _devices_named_by(self, arguments: Mapping[str, Any]) -> list[Device]:
        # Tools name devices by these argument conventions. A tool that takes a device some
        # other way must call ``authorize_device`` itself once it has resolved the device.
        references: list[str] = []
        for key in ("device", "device_id"):
            if isinstance(arguments.get(key), str):
                references.append(arguments[key])
        for change in arguments.get("changes") or ():
            reference = getattr(change, "device", None)
            if isinstance(change, Mapping):
                reference = change.get("device")
            if isinstance(reference, str):
                references.append(reference)
        devices: list[Device] = []
        for reference in dict.fromkeys(references):
            devices.append(await self.inventory.find(reference))
        return devices

    async def _plan_named_by(self, arguments: Mapping[str, Any]) -> Plan | None:
        plan_id = arguments.get("plan_id")
        if not isinstance(plan_id, str):
            return None
        async with self.db.session() as session:
            return await session.get(Plan, plan_id)


async def authorize_device(device: Device) -> None:
    """Check ``device`` against the current tool call; tools call this after resolving a device.

    Raises ``AccessDenied`` when the caller may not use the tool on the device's environment.
    """
    current = _current_call.get()
    if current is None:
        raise RuntimeError("authorize_device was called outside a tool call")
    access, call = current
    await access.authorize_device(call, device)


async def authorize_plan(services: Any, roles: Iterable[str], plan_id: str, tier: str, *,
                         what: str) -> None:
    """Check ``tier`` against every environment of a plan, for routes that act on plans.

    Raises ``AccessDenied``. A plan that does not exist passes, so the caller's own lookup can
    report it as not found.
    """
    access = tool_access(services)
    async with access.db.session() as session:
        plan = await session.get(Plan, plan_id)
    if plan is None:
        return
    for environment in plan.environments:
        access.matrix.check(roles, tier, environment, what=what)


def tool_access(services: Any) -> ToolAccess:
    """Return the ``ToolAccess`` of an api's services, creating it on first use."""
    access = getattr(services, "tool_access", None)
    if access is None:
        access = ToolAccess(services.settings, services.db, services.inventory)
        services.tool_access = access
    return access


class HideForbiddenTools:
    """MCP server middleware: drop the tools a caller may not use from its ``tools/list``.

    Calls are still checked one by one in ``ToolRunner``; hiding only keeps models from
    planning with tools they will be refused. A tool without a ``tikflow/tier`` in its meta
    is treated as ``admin``, so an unclassified tool is never shown to everyone.
    """

    def __init__(self, services: Any) -> None:
        self.services = services

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        result = await call_next(ctx)
        if ctx.method != "tools/list":
            return result
        # Imported here: api.security imports this module.
        from api.security import principal_from_access_token

        roles = principal_from_access_token(get_access_token()).roles
        access = tool_access(self.services)
        # Inner layers may already have serialised the result to its wire form (a dict).
        if isinstance(result, ListToolsResult):
            tools = [tool for tool in result.tools
                     if access.visible(roles, _tier_of(tool.meta))]
            return result.model_copy(update={"tools": tools})
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            tools = [tool for tool in result["tools"]
                     if access.visible(roles, _tier_of(tool.get("_meta") or tool.get("meta")))]
            return {**result, "tools": tools}
        raise TypeError(f"tools/list returned {type(result).__name__}; cannot filter it by role")


def _tier_of(meta: Mapping[str, Any] | None) -> str:
    return str((meta or {}).get("tikflow/tier", "admin"))
