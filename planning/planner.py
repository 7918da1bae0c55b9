"""Turn change requests into a resolved plan: read current state, select items, diff, score."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from planning.model import (
    ChangeRequest,
    DeviceDiff,
    DiffEntry,
    ResolvedChange,
    ResolvedPlan,
    ResolvedTarget,
)
from planning.risk import ManagementPath, assess, on_network
from planning.state import fingerprint, matches, render_diff
from planning.validation import (
    SINGLETON_PATHS,
    PlanValidationError,
    check_request,
    normalise_path,
)

MAX_CHANGES = 500
PREFETCH_CONCURRENCY = 16


@dataclass(frozen=True)
class PlanDevice:
    """A device as the planner sees it: identity, environment and management address."""

    id: str
    name: str
    environment: str
    address: str
    port: int | None = None
    transport: str | None = None
    username: str | None = None


DeviceLookup = Callable[[str], Awaitable[PlanDevice]]
TableReader = Callable[[PlanDevice, str], Awaitable[list[dict[str, str]]]]


async def build_plan(
    description: str,
    requests: list[ChangeRequest],
    *,
    lookup_device: DeviceLookup,
    read_table: TableReader,
) -> ResolvedPlan:
    """Resolve every request against the devices' current state.

    Raises:
        PlanValidationError: a request is malformed or selects nothing; the message names
            what to change.
    """
    if not description.strip():
        raise PlanValidationError("description is empty; say what the plan does and why")
    if not requests:
        raise PlanValidationError("changes is empty; give at least one change")
    if len(requests) > MAX_CHANGES:
        raise PlanValidationError(f"a plan can contain at most {MAX_CHANGES} changes, got {len(requests)}; split it into several plans")

    devices: dict[str, PlanDevice] = {}
    tables: dict[tuple[str, str], list[dict[str, str]]] = {}

    async def table(device: PlanDevice, path: str) -> list[dict[str, str]]:
        key = (device.id, path)
        if key not in tables:
            tables[key] = await read_table(device, path)
        return tables[key]

    paths = [normalise_path(request.path) for request in requests]
    for request, path in zip(requests, paths, strict=True):
        check_request(request, path)
    found = await _prefetch(requests, paths, lookup_device, table)

    changes: list[ResolvedChange] = []
    for seq, (request, path) in enumerate(zip(requests, paths, strict=True), start=1):
        device = found[request.device]
        devices[device.id] = device
        rows = await table(device, path)
        await _check_references(device, path, request, table)
        _reject_duplicate_address(seq, device, path, request, rows)
        changes.append(_resolve(seq, device, path, request, rows))

    _reject_overlaps(changes)
    diff = [_device_diff(device, changes) for device in devices.values()]
    # Read before the fingerprints are taken, so an address read for this is fingerprinted too.
    management = {d.id: await _management_path(d, changes, table) for d in devices.values()}
    fingerprints = {
        device_id: {path: fingerprint(rows) for (d, path), rows in sorted(tables.items()) if d == device_id}
        for device_id in devices
    }
    risk = assess(
        changes,
        management=management,
        environments={d.id: d.environment for d in devices.values()},
    )
    warnings = [w for change in changes
                for w in _spelling_warnings(change, tables.get((change.device_id, change.path), []))]
    return ResolvedPlan(
        description=description.strip(),
        changes=changes,
        diff=diff,
        risk=risk,
        fingerprints=fingerprints,
        warnings=warnings,
    )


def _spelling_warnings(change: ResolvedChange, rows: list[dict[str, str]]) -> list[str]:
    """Warn about written properties that look like a misspelling of one the menu's items have.

    Only a warning: RouterOS leaves unset properties out of print, so a property no existing
    item shows can still be valid. The device rejects a real typo at apply time, and the
    plan rolls back.
    """
    seen = {key for row in rows for key in row}
    warnings = []
    for key in change.values:
        if key in seen or key.startswith("!"):
            continue
        close = difflib.get_close_matches(key, sorted(seen), n=1, cutoff=0.8)
        if close:
            warnings.append(f"change {change.seq}: no item of {change.path} on {change.device_name} "
                            f"has property {key!r}; did you mean {close[0]!r}?")
    return warnings


def _reject_duplicate_address(seq: int, device: PlanDevice, path: str, request: ChangeRequest,
                              rows: list[dict[str, str]]) -> None:
    """Refuse an address the device already has: RouterOS rejects it at apply time anyway."""
    address = (request.values or {}).get("address")
    if request.action != "add" or path not in ("/ip/address", "/ipv6/address") or not address:
        return
    for row in rows:
        if row.get("address") == address:
            raise PlanValidationError(
                f"change {seq}: {device.name} already has address {address} on "
                f"{row.get('interface', '?')} ({row.get('.id', 'no id')}); nothing to add, or "
                "choose another address")


async def _prefetch(requests: list[ChangeRequest], paths: list[str], lookup_device: DeviceLookup,
                    table: Callable[[PlanDevice, str], Awaitable[list[dict[str, str]]]]
                    ) -> dict[str, PlanDevice]:
    """Look devices up and read their touched tables concurrently, at most 16 devices at once.

    A plan over hundreds of devices would otherwise wait for each device in turn. Reads for one
    device stay sequential, so a device is never sent more concurrent requests than before.
    """
    limit = asyncio.Semaphore(PREFETCH_CONCURRENCY)
    refs = list(dict.fromkeys(request.device for request in requests))
    devices = dict(zip(refs, await asyncio.gather(*(lookup_device(ref) for ref in refs)), strict=True))
    wanted: dict[str, list[str]] = {}
    for request, path in zip(requests, paths, strict=True):
        wanted.setdefault(request.device, [])
        for needed in (path, "/interface" if _names_interface(request, path) else None):
            if needed and needed not in wanted[request.device]:
                wanted[request.device].append(needed)

    async def read(ref: str) -> None:
        async with limit:
            for path in wanted[ref]:
                await table(devices[ref], path)

    await asyncio.gather(*(read(ref) for ref in wanted))
    return devices


def _names_interface(request: ChangeRequest, path: str) -> bool:
    return "interface" in (request.values or {}) and not path.startswith("/interface")


async def _management_path(device: PlanDevice, changes: list[ResolvedChange],
                           table: Callable[[PlanDevice, str], Awaitable[list[dict[str, str]]]]) -> ManagementPath:
    """Describe how tikflow reaches ``device``, naming the interface only when a change needs it.

    The interface carrying the management address is looked up in /ip/address only for plans
    that touch interface menus, so other plans read no extra table.
    """
    interface = None
    if any(c.device_id == device.id and c.path.startswith("/interface") for c in changes):
        for row in await table(device, "/ip/address"):
            if on_network(row.get("address", ""), device.address):
                interface = row.get("interface")
                break
    return ManagementPath(address=device.address, port=device.port, transport=device.transport,
                          username=device.username, interface=interface)


def _resolve(seq: int, device: PlanDevice, path: str, request: ChangeRequest,
             rows: list[dict[str, str]]) -> ResolvedChange:
    singleton = path in SINGLETON_PATHS
    targets: list[ResolvedTarget] = []
    if request.action in ("set", "remove"):
        if singleton:
            current = rows[0] if rows else {}
            targets = [ResolvedTarget(id="", before=current)]
        else:
            selected = [row for row in rows if matches(row, request.where or {})]
            if not selected:
                raise PlanValidationError(
                    f"change {seq}: no item in {path} on {device.name} matches where "
                    f"{request.where}; list the items first and select by a property they have, "
                    "or by .id"
                )
            targets = [ResolvedTarget(id=row.get(".id", ""), before=row) for row in selected]
    return ResolvedChange(
        seq=seq,
        device_id=device.id,
        device_name=device.name,
        path=path,
        action=request.action,
        where=request.where or {},
        values=request.values or {},
        targets=targets,
        singleton=singleton,
    )


async def _check_references(device: PlanDevice, path: str, request: ChangeRequest,
                            table: Callable[[PlanDevice, str], Awaitable[list[dict[str, str]]]]) -> None:
    """Check that an interface and a place-before rule named in the values exist on the device."""
    values = request.values or {}
    interface = values.get("interface")
    if interface is not None and not path.startswith("/interface"):
        names = {row.get("name") for row in await table(device, "/interface")}
        if interface not in names:
            known = ", ".join(sorted(n for n in names if n)[:20])
            raise PlanValidationError(
                f"interface {interface!r} does not exist on {device.name}; use one of: {known}"
            )
    placement = values.get("place-before")
    if placement is not None:
        if not any(row.get(".id") == placement for row in await table(device, path)):
            raise PlanValidationError(
                f"place-before {placement} is not an item of {path} on {device.name}; list the "
                "items again and pass an .id from that list"
            )


def _reject_overlaps(changes: list[ResolvedChange]) -> None:
    """Refuse two changes that touch the same item: the second would act on stale state."""
    seen: dict[tuple[str, str, str], int] = {}
    for change in changes:
        for target in change.targets:
            key = (change.device_id, change.path, target.id)
            if key in seen:
                raise PlanValidationError(
                    f"changes {seen[key]} and {change.seq} both touch {change.path} {target.id or '(menu)'} "
                    f"on {change.device_name}; merge them into one change"
                )
            seen[key] = change.seq


def _device_diff(device: PlanDevice, changes: list[ResolvedChange]) -> DeviceDiff:
    entries: list[DiffEntry] = []
    for change in changes:
        if change.device_id != device.id:
            continue
        if change.action == "add":
            entries.append(DiffEntry(seq=change.seq, path=change.path, action="add", id=None,
                                     before=None, after=dict(change.values)))
            continue
        for target in change.targets:
            after = None if change.action == "remove" else _apply_values(target.before, change.values)
            entries.append(DiffEntry(seq=change.seq, path=change.path, action=change.action,
                                     id=target.id or None, before=target.before, after=after))
    return DeviceDiff(
        device_id=device.id,
        device_name=device.name,
        environment=device.environment,
        entries=entries,
        text=render_diff(device.name, entries),
    )


def _apply_values(before: dict[str, str], values: dict[str, str]) -> dict[str, str]:
    after = dict(before)
    for key, value in values.items():
        if before.get(key) in ("true", "false") and value in ("yes", "no"):
            value = "true" if value == "yes" else "false"
        after[key] = value
    return after
