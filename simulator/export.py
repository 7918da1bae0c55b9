"""Render device state as a RouterOS ``.rsc`` export (compact or terse).

Compact output lists only what differs from the built-in defaults: added items as
``add``, changed built-ins as ``set [ find default-name=... ]`` or ``set`` on a singleton.
Quoting, escaping and line wrapping come from :mod:`routeros.rsc`.
"""

from __future__ import annotations

from collections.abc import Iterator

from routeros import rsc
from routeros.rsc import RscCommand
from routeros.rsc import render as rsc_render
from simulator import schema as schemas
from simulator.state import DeviceState, Item, Table

# Menus that RouterOS never exports: users carry passwords, files are not configuration.
NOT_EXPORTED = frozenset({"/user", "/file", "/system/history"})
HIDDEN_PROPERTIES = frozenset({".id"})
SENSITIVE_PROPERTIES = frozenset({"password", "private-key", "preshared-key", "secret", "authentication-password"})


def render_export(
    state: DeviceState,
    *,
    terse: bool = False,
    show_sensitive: bool = False,
    menu: str | None = None,
    verbose: bool = False,
) -> str:
    """Return the export text of ``state``, optionally only the menu ``menu`` and below.

    ``verbose`` lists every stored property of built-in items, not only changed ones.
    """
    sections: list[tuple[str, list[RscCommand]]] = []
    for path, table in _ordered_tables(state):
        if path in NOT_EXPORTED or (menu is not None and not (path == menu or path.startswith(menu + "/"))):
            continue
        commands = list(_table_commands(state, path, table.singleton, show_sensitive, verbose))
        if commands:
            sections.append((path, commands))
    return rsc.render_export(
        sections, style="terse" if terse else "compact", header=_header(state), version=state.version
    )


def _ordered_tables(state: DeviceState) -> list[tuple[str, Table]]:
    """Order menus as the loaded export did; menus it never named follow in creation order."""
    rank = {path: index for index, path in enumerate(state.menu_order)}
    tables = list(state.tables.items())
    return sorted(tables, key=lambda pair: rank.get(pair[0], len(rank)))


def _header(state: DeviceState) -> rsc.ExportHeader:
    loaded = state.header
    return rsc.ExportHeader(
        software_id=getattr(loaded, "software_id", None) or "",
        system_id=getattr(loaded, "system_id", None),
        model=getattr(loaded, "model", None),
        serial=getattr(loaded, "serial", None),
    )


def _table_commands(
    state: DeviceState, path: str, singleton: bool, show_sensitive: bool, verbose: bool
) -> Iterator[RscCommand]:
    schema = schemas.schema_for(path)
    for position, item in enumerate(state.tables[path].items):
        default = state.builtin(path, item)
        if default is None and not singleton:
            yield RscCommand(path, "add", properties=_properties(schema, _without_hidden(item), show_sensitive))
            continue
        # Verbose exports list every property of a built-in item, compact ones only changes.
        changed = _changed(item, {} if verbose else default or {})
        properties = _properties(schema, changed, show_sensitive)
        if not properties:
            continue
        if singleton:
            yield RscCommand(path, "set", properties=properties)
            continue
        assert default is not None
        selector, selector_filter = _selector(default, position)
        yield RscCommand(path, "set", selector=selector, selector_filter=selector_filter, properties=properties)


def _without_hidden(item: Item) -> Item:
    return {name: value for name, value in item.items() if name not in HIDDEN_PROPERTIES}


def _changed(item: Item, default: Item) -> Item:
    return {
        name: value
        for name, value in item.items()
        if name not in HIDDEN_PROPERTIES and default.get(name) != value and name not in ("default-name", "default")
    }


def _selector(default: Item, position: int) -> tuple[str | None, dict[str, str] | None]:
    if "default-name" in default:
        return None, {"default-name": default["default-name"]}
    if default.get("default") == "true":
        return None, {"default": "yes"}
    name = default.get("name")
    if name and not rsc_render.needs_quotes(name):
        return name, None
    if name:
        return None, {"name": name}
    return str(position), None


def _properties(schema: schemas.MenuSchema, properties: Item, show_sensitive: bool) -> list[tuple[str, str | None]]:
    rendered: list[tuple[str, str | None]] = []
    for name, value in properties.items():
        if name in SENSITIVE_PROPERTIES and not show_sensitive:
            continue
        if name in schema.flags and value == "":
            rendered.append((name, None))
        elif schema.is_boolean(name) and value in ("true", "false"):
            rendered.append((name, "yes" if value == "true" else "no"))
        else:
            rendered.append((name, value))
    return rendered
