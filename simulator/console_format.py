"""Text layouts of console ``print``: table, ``detail``, ``terse`` and singleton lists.

The layouts keep what screen-scraping clients parse in RouterOS output. Item numbers fill
the first column, then a flag column with one letter per boolean state (``X`` disabled).
Comments get ``;;;`` lines, values are quoted when they contain spaces, and booleans are
``yes``/``no``. Values keep their raw
bytes (``surrogateescape``), as the console prints what the device stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from simulator import schema as schemas

# Boolean states shown as a flag letter instead of a property, in legend order.
FLAG_LETTERS = (("disabled", "X"), ("invalid", "I"), ("dynamic", "D"), ("running", "R"), ("slave", "S"))
_FLAG_NAMES = frozenset(name for name, _ in FLAG_LETTERS)

# Columns a plain `print` shows for well-known menus; other menus show their first properties.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "/ip/address": ("address", "network", "interface"),
    "/ipv6/address": ("address", "from-pool", "interface", "advertise"),
    "/interface": ("name", "type", "mtu", "mac-address"),
    "/interface/ethernet": ("name", "mtu", "mac-address"),
    "/interface/vlan": ("name", "mtu", "vlan-id", "interface"),
    "/interface/bridge": ("name", "mtu", "protocol-mode"),
    "/interface/bridge/port": ("interface", "bridge", "pvid"),
    "/ip/route": ("dst-address", "gateway", "distance"),
    "/ip/pool": ("name", "ranges"),
    "/ip/dhcp-server": ("name", "interface", "address-pool", "lease-time"),
    "/ip/firewall/address-list": ("list", "address", "timeout"),
    "/ip/service": ("name", "port", "address", "certificate"),
    "/user": ("name", "group", "address", "last-logged-in"),
    "/user/group": ("name", "policy"),
    "/file": ("name", "type", "size", "creation-time"),
    "/system/scheduler": ("name", "start-date", "start-time", "interval", "on-event"),
    "/system/script": ("name", "owner", "run-count"),
}
_MAX_GENERIC_COLUMNS = 4
# Characters before the first table cell: item number, flags and separators.
_TABLE_LEAD = 6
_QUOTE_TRIGGERS = frozenset(' "\\;$?{}[]()=\'')


def cli_values(path: str, row: Mapping[str, str]) -> dict[str, str]:
    """Return a row with booleans spelled ``yes``/``no`` as the console shows them."""
    schema = schemas.schema_for(path)
    values = {}
    for name, value in row.items():
        if value in ("true", "false") and (schema.is_boolean(name) or name in _FLAG_NAMES):
            value = "yes" if value == "true" else "no"
        values[name] = value
    return values


def singleton(path: str, row: Mapping[str, str]) -> str:
    """Format a singleton menu as right-aligned ``name: value`` lines."""
    values = cli_values(path, row)
    if not values:
        return ""
    width = max(len(name) for name in values) + 2
    return "".join(f"{name.rjust(width)}: {value}\n" for name, value in values.items())


def ping_lines(rows: Iterable[Mapping[str, str]]) -> str:
    """Format ping results as the console's SEQ/HOST table with a summary line."""
    rows = list(rows)
    lines = ["  SEQ HOST                                     SIZE TTL TIME       STATUS\n"]
    for row in rows:
        size, ttl, time = row.get("size", ""), row.get("ttl", ""), row.get("time", "")
        status = row.get("status", "")
        lines.append(f"{row['seq']:>5} {row['host']:<40} {size:>4} {ttl:>3} {time:<10} {status}".rstrip() + "\n")
    if rows:
        last = rows[-1]
        summary = f"sent={last['sent']} received={last['received']} packet-loss={last['packet-loss']}%"
        if "avg-rtt" in last:
            summary += f" min-rtt={last['min-rtt']} avg-rtt={last['avg-rtt']} max-rtt={last['max-rtt']}"
        lines.append(f"    {summary}\n")
    return "".join(lines)


def terse(path: str, rows: Iterable[Mapping[str, str]], *, show_ids: bool = False) -> str:
    """Format items one per line: number (or ``.id``), flags, then every ``name=value``."""
    lines = []
    for number, row in enumerate(rows):
        values = cli_values(path, row)
        pairs = " ".join(_pair(path, name, value) for name, value in _shown(values, keep_comment=True))
        lines.append(f"{_label(number, row, show_ids)} {_flags(row):<2}{pairs}\n")
    return "".join(lines)


def detail(
    path: str, rows: Iterable[Mapping[str, str]], width: int, *, version7: bool, show_ids: bool = False
) -> str:
    """Format items as ``name=value`` pairs wrapped at ``width`` under a flags legend."""
    rows = list(rows)
    lines = [_legend(rows, version7)] if _has_flags(rows) else []
    for number, row in enumerate(rows):
        values = cli_values(path, row)
        prefix = f"{_label(number, row, show_ids)} {_flags(row):<2} "
        indent = " " * len(prefix)
        comment = values.get("comment")
        if comment:
            lines.append(f"{prefix};;; {comment}\n")
            prefix = indent
        pairs = [_pair(path, name, value) for name, value in _shown(values, keep_comment=False)]
        lines.extend(_wrap(prefix, indent, pairs, width))
        lines.append("\n")
    return "".join(lines)


def table(
    path: str, rows: Iterable[Mapping[str, str]], width: int, *, version7: bool, show_ids: bool = False
) -> str:
    """Format items as a table of the menu's main columns."""
    rows = [
        cli_values(path, row) | {"__flags": _flags(row), "__label": _label(number, row, show_ids)}
        for number, row in enumerate(rows)
    ]
    if not rows:
        return ""
    columns = _columns(path, rows)
    widths = [max([len(c), *(len(row.get(c, "")) for row in rows)]) for c in columns]
    columns, widths = _fit_columns(columns, widths, width)
    headers = [column.upper() for column in columns]
    lines = [_legend(rows, version7)] if _has_flags(rows) else []
    if version7 and columns:
        lines.append(f"Columns: {', '.join(headers)}\n")
    lines.append(_table_line(" #", "", headers, widths))
    for row in rows:
        label = row["__label"]
        if row.get("comment"):
            lines.append(f"{label} {row['__flags']:<2} ;;; {row['comment']}\n")
            label = " " * len(label)
        cells = [row.get(column, "") for column in columns]
        lines.append(_table_line(label, row["__flags"], cells, widths))
    return "".join(lines)


def _fit_columns(columns: list[str], widths: list[int], width: int) -> tuple[list[str], list[int]]:
    """Drop trailing columns that do not fit ``width``, as the console does; keep at least one."""
    used = _TABLE_LEAD
    for index, size in enumerate(widths):
        used += size + 2
        if used > width and index > 0:
            return columns[:index], widths[:index]
    return columns, widths


def _label(number: int, row: Mapping[str, str], show_ids: bool) -> str:
    if show_ids and ".id" in row:
        return row[".id"]
    return f"{number:>2}"


def _table_line(label: str, flags: str, cells: list[str], widths: list[int]) -> str:
    body = "  ".join(cell.ljust(size) for cell, size in zip(cells, widths, strict=True)).rstrip()
    return f"{label} {flags:<2} {body}\n"


def _columns(path: str, rows: list[dict[str, str]]) -> list[str]:
    known = DEFAULT_COLUMNS.get(path)
    if known is not None:
        return list(known)
    columns: list[str] = []
    for row in rows:
        for name in row:
            if name.startswith((".", "__")) or name in _FLAG_NAMES or name == "comment":
                continue
            if name not in columns:
                columns.append(name)
            if len(columns) >= _MAX_GENERIC_COLUMNS:
                return columns
    return columns


def _shown(values: Mapping[str, str], *, keep_comment: bool) -> list[tuple[str, str]]:
    shown = []
    for name, value in values.items():
        if name.startswith(".") or name in _FLAG_NAMES:
            continue
        if name == "comment" and not keep_comment:
            continue
        shown.append((name, value))
    return shown


def _pair(path: str, name: str, value: str) -> str:
    # A set flag property (`fib`, `passive`) is stored as an empty value and printed bare.
    if value == "" and name in schemas.schema_for(path).flags:
        return name
    return f"{name}={quote(value)}"


def quote(value: str) -> str:
    """Quote a value the way print does when it has spaces or special characters."""
    if value and not any(char in _QUOTE_TRIGGERS or char < " " for char in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _wrap(prefix: str, indent: str, pairs: list[str], width: int) -> list[str]:
    lines = []
    current = prefix
    for pair in pairs:
        if current.strip() and len(current) + len(pair) + 1 > width:
            lines.append(current.rstrip() + " \n")
            current = indent
        current += pair + " "
    lines.append(current.rstrip() + " ")
    return lines


def _flags(row: Mapping[str, str]) -> str:
    letters = ""
    for name, letter in FLAG_LETTERS:
        if name == "running":
            continue
        if row.get(name) in ("true", "yes"):
            letters += letter
    if row.get("running") in ("true", "yes") and row.get("disabled") not in ("true", "yes"):
        letters += "R"
    return letters


def _has_flags(rows: list[Mapping[str, str]]) -> bool:
    return any(name in row for row in rows for name in _FLAG_NAMES)


def _legend(rows: list[Mapping[str, str]], version7: bool) -> str:
    present = [(name, letter) for name, letter in FLAG_LETTERS if any(name in row for row in rows)]
    if version7:
        return "Flags: " + "; ".join(f"{letter} - {name.upper()}" for name, letter in present) + "\n"
    return "Flags: " + ", ".join(f"{letter} - {name}" for name, letter in present) + " \n"
