"""Render device state as a RouterOS ``.rsc`` export (compact or terse).

Compact output lists only what differs from the built-in defaults: added items as
``add``, changed built-ins as ``set [ find default-name=... ]`` or ``set`` on a singleton.
Values are quoted and escaped the way RouterOS does, with one uppercase ``\\HH`` per
non-ASCII byte.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from simulator import schema as schemas
from simulator.state import DeviceState, Item, split_version

# Menus that RouterOS never exports: users carry passwords, files are not configuration.
NOT_EXPORTED = frozenset({"/user", "/file", "/system/history"})
HIDDEN_PROPERTIES = frozenset({".id"})
SENSITIVE_PROPERTIES = frozenset({"password", "private-key", "preshared-key", "secret", "authentication-password"})
_PLAIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/,!*<>#@+%&|~^")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "$": "\\$", "?": "\\?", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def render_export(
    state: DeviceState,
    *,
    terse: bool = False,
    show_sensitive: bool = False,
    menu: str | None = None,
    now: float | None = None,
) -> str:
    """Return the export text of ``state``, optionally only the menu ``menu`` and below."""
    lines = list(_header(state, now if now is not None else time.time()))
    for path, table in state.tables.items():
        if path in NOT_EXPORTED or (menu is not None and not (path == menu or path.startswith(menu + "/"))):
            continue
        commands = list(_table_commands(state, path, table.singleton, show_sensitive))
        if not commands:
            continue
        cli_path = " ".join(part for part in path.split("/") if part)
        if terse:
            lines.extend(f"/{cli_path} {command}" for command in commands)
        else:
            lines.append(f"/{cli_path}")
            lines.extend(commands)
    return "\n".join(lines) + "\n"


def _header(state: DeviceState, now: float) -> Iterator[str]:
    stamp = time.gmtime(now)
    if split_version(state.version) >= (7, 10):
        date = time.strftime("%Y-%m-%d %H:%M:%S", stamp)
    else:
        date = time.strftime("%b/%d/%Y %H:%M:%S", stamp).lower()
    yield f"# {date} by RouterOS {state.version}"
    header = state.header
    software_id = getattr(header, "software_id", None) or ""
    yield f"# software id = {software_id}"
    model = getattr(header, "model", None)
    serial = getattr(header, "serial", None)
    if model:
        yield "#"
        yield f"# model = {model}"
    if serial:
        yield f"# serial number = {serial}"


def _table_commands(state: DeviceState, path: str, singleton: bool, show_sensitive: bool) -> Iterator[str]:
    schema = schemas.schema_for(path)
    for position, item in enumerate(state.tables[path].items):
        default = state.builtin(path, item)
        if singleton:
            changed = _changed(item, default or {})
            if changed:
                yield _join("set", _render_properties(schema, changed, show_sensitive))
            continue
        if default is None:
            yield _join("add", _render_properties(schema, _without_hidden(item), show_sensitive))
            continue
        changed = _changed(item, default)
        if changed:
            yield _join(f"set {_selector(default, position)}", _render_properties(schema, changed, show_sensitive))


def _without_hidden(item: Item) -> Item:
    return {name: value for name, value in item.items() if name not in HIDDEN_PROPERTIES}


def _changed(item: Item, default: Item) -> Item:
    return {
        name: value
        for name, value in item.items()
        if name not in HIDDEN_PROPERTIES and default.get(name) != value and name not in ("default-name", "default")
    }


def _selector(default: Item, position: int) -> str:
    if "default-name" in default:
        return f"[ find default-name={quote_value(default['default-name'])} ]"
    if default.get("default") == "true":
        return "[ find default=yes ]"
    if "name" in default:
        return quote_value(default["name"])
    return str(position)


def _join(verb: str, properties: list[str]) -> str:
    return " ".join([verb, *properties])


def _render_properties(schema: schemas.MenuSchema, properties: Item, show_sensitive: bool) -> list[str]:
    rendered: list[str] = []
    for name, value in properties.items():
        if name in SENSITIVE_PROPERTIES and not show_sensitive:
            continue
        if name in schema.flags and value == "":
            rendered.append(name)
        elif schema.is_boolean(name) and value in ("true", "false"):
            rendered.append(f"{name}={'yes' if value == 'true' else 'no'}")
        else:
            rendered.append(f"{name}={quote_value(value)}")
    return rendered


def quote_value(value: str) -> str:
    """Quote ``value`` for a console line, escaping like RouterOS (``\\HH`` per non-ASCII byte)."""
    if value and all(char in _PLAIN_CHARS for char in value):
        return value
    out: list[str] = []
    for byte in value.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:02X}")
    return '"' + "".join(out) + '"'
