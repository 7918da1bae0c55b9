"""Apply the commands of a parsed export to a :class:`~simulator.state.DeviceState`.

Loading is permissive on purpose: an export is what a real device printed, so unknown
menus become generic tables, dangling ``*64`` references are kept as they are and every
property seen becomes known for its menu. Commands the loader cannot place are collected
in :attr:`LoadReport.skipped` instead of failing the whole load.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from simulator import schema as schemas
from simulator.state import DeviceState, Item, Table, normalize_boolean, parse_id

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """Outcome of an export load: the applied count and each skipped line with its reason."""

    applied: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)


def apply_export(state: DeviceState, commands: Iterable[Any]) -> LoadReport:
    """Apply ``add``/``set``/``remove`` commands of an export to ``state`` in order."""
    report = LoadReport()
    seen = set(state.menu_order)
    for command in commands:
        if command.path not in seen:
            seen.add(command.path)
            state.menu_order.append(command.path)
        try:
            applied = _apply_command(state, command)
        except (KeyError, ValueError, IndexError) as error:
            report.skipped.append((command.line, f"{command.path} {command.verb}: {error}"))
            continue
        if applied:
            report.applied += 1
        else:
            report.skipped.append((command.line, f"{command.path} {command.verb}: verb not loaded"))
    if report.skipped:
        logger.debug("export load skipped %d commands", len(report.skipped))
    return report


def stored_properties(state: DeviceState, path: str, properties: Iterable[tuple[str, str | None]]) -> dict[str, str | None]:
    """Convert export properties to stored form: booleans to true/false, ``!name`` to unset.

    The returned mapping uses ``None`` for a property to remove. Every name is recorded
    as known for ``path``.
    """
    schema = schemas.schema_for(path)
    known = state.export_properties.setdefault(path, set())
    changes: dict[str, str | None] = {}
    for name, value in properties:
        if name.startswith("!"):
            known.add(name[1:])
            changes[name[1:]] = None
            continue
        known.add(name)
        if value is None:
            changes[name] = ""
        elif schema.is_boolean(name):
            changes[name] = normalize_boolean(value) or value
        else:
            changes[name] = value
    return changes


def _apply_command(state: DeviceState, command: Any) -> bool:
    path = command.path.rstrip("/") or "/"
    if command.verb == "add":
        changes = stored_properties(state, path, command.properties)
        state.create_item(path, {k: v for k, v in changes.items() if v is not None})
        return True
    if command.verb == "set":
        changes = stored_properties(state, path, command.properties)
        target = _resolve_target(state, path, command)
        if target is None:
            state.update_item(path, None, changes)
        else:
            state.update_item(path, target[".id"], changes)
        return True
    if command.verb == "remove":
        target = _resolve_target(state, path, command)
        if target is not None:
            state.remove_item(path, target[".id"])
        return True
    return False


def _resolve_target(state: DeviceState, path: str, command: Any) -> Item | None:
    """Find (or create, for built-in items) the item a ``set``/``remove`` line addresses.

    Returns ``None`` for a singleton menu, which ``set`` addresses without a selector.
    """
    selector = (command.selector or "").strip() or None
    selector_filter = command.selector_filter
    if selector is None and not selector_filter:
        state.writable(path, singleton=_is_singleton(state, path))
        if state.tables[path].singleton:
            return None
        table = state.tables[path]
        if not table.items:
            table.items.append({})
            table.singleton = True
            state.mark_builtin(path, {})
            return None
        raise ValueError("set without a selector on a table menu")
    table = state.writable(path)
    if selector_filter:
        return _find_or_create_builtin(state, path, table, selector_filter)
    assert selector is not None
    if selector.isdigit():
        return _positional(state, path, table, int(selector))
    found = table.find(selector)
    if found is not None:
        return found
    if parse_id(selector) is not None:
        return _builtin(state, path, {}, item_id=selector)
    return _builtin(state, path, {"name": selector})


def _builtin(state: DeviceState, path: str, properties: dict[str, str], item_id: str | None = None) -> Item:
    item = state.create_item(path, properties, item_id=item_id)
    state.mark_builtin(path, item)
    return item


def _is_singleton(state: DeviceState, path: str) -> bool:
    table = state.tables.get(path)
    if table is not None:
        return table.singleton
    return schemas.MENUS.get(path, schemas.GENERIC_SINGLETON).singleton or path not in schemas.MENUS


def _find_or_create_builtin(state: DeviceState, path: str, table: Table, selector_filter: dict[str, str]) -> Item:
    matches = table.matching(selector_filter)
    if matches:
        return matches[0]
    # A built-in item that this device model has but the factory state lacks (ether14).
    properties = dict(selector_filter)
    if "default" in properties:
        properties["default"] = normalize_boolean(properties["default"]) or properties["default"]
    if "default-name" in properties and "name" not in properties:
        properties["name"] = properties["default-name"]
    return _builtin(state, path, properties)


def _positional(state: DeviceState, path: str, table: Table, index: int) -> Item:
    # CLI numbers count items in print order; missing built-ins are created as blanks.
    while len(table.items) <= index:
        _builtin(state, path, {})
    return table.items[index]
