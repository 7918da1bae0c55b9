"""Comparing device tables: fingerprints, item matching and the readable diff text."""

from __future__ import annotations

import hashlib

from planning.model import DiffEntry, canonical_json

# Properties RouterOS computes or counts; they change on their own and must not make a plan
# look stale or a rollback look incomplete.
VOLATILE_PROPERTIES = frozenset(
    {
        "bytes",
        "packets",
        "rx-byte",
        "tx-byte",
        "rx-packet",
        "tx-packet",
        "uptime",
        "last-link-up-time",
        "last-link-down-time",
        "link-downs",
        "fp-rx-byte",
        "fp-tx-byte",
        "fp-rx-packet",
        "fp-tx-packet",
        "cpu-load",
        "free-memory",
        "time",
        "date",
    }
)

# Properties RouterOS derives from others; they are never written back when an item is re-added.
READ_ONLY_PROPERTIES = frozenset(
    {".id", "dynamic", "invalid", "actual-interface", "network", "running", "slave", "default-name"}
)


# Arguments of ``add`` that say where an item goes rather than what it is; the stored item
# never shows them, so they are left out when a stored item is compared with a planned one.
PLACEMENT_ARGUMENTS = frozenset({"place-before"})


def item_properties(values: dict[str, str]) -> dict[str, str]:
    """Return the planned values of an add without its placement arguments."""
    return {key: value for key, value in values.items() if key not in PLACEMENT_ARGUMENTS}


def stable_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Drop volatile properties; keep order, because order matters in firewall chains."""
    return [{k: v for k, v in row.items() if k not in VOLATILE_PROPERTIES} for row in rows]


def fingerprint(rows: list[dict[str, str]]) -> str:
    """Return the SHA-256 of a table's stable content, ids and order included."""
    return hashlib.sha256(canonical_json(stable_rows(rows)).encode()).hexdigest()


def matches(row: dict[str, str], where: dict[str, str]) -> bool:
    """Return whether a row has every property in ``where`` with an equal value."""
    return all(row.get(key) == _normalise_bool(row.get(key), value) for key, value in where.items())


def _normalise_bool(current: str | None, wanted: str) -> str:
    # API replies use true/false, while callers and exports use yes/no.
    if current in ("true", "false") and wanted in ("yes", "no"):
        return "true" if wanted == "yes" else "false"
    return wanted


def writable(row: dict[str, str]) -> dict[str, str]:
    """Return the properties of a row that can be sent back in an add."""
    return {
        k: v
        for k, v in row.items()
        if k not in READ_ONLY_PROPERTIES and k not in VOLATILE_PROPERTIES
    }


def same_content(left: list[dict[str, str]], right: list[dict[str, str]]) -> bool:
    """Compare two tables by content and order, ignoring ids (a re-added item gets a new id)."""
    strip = [writable(r) for r in stable_rows(left)]
    other = [writable(r) for r in stable_rows(right)]
    return strip == other


def render_diff(device_name: str, entries: list[DiffEntry]) -> str:
    """Render a unified-style, human readable diff of one device's entries."""
    lines = [f"device {device_name}"]
    for entry in entries:
        header = f"  [{entry.seq}] {entry.action} {entry.path}"
        lines.append(header + (f" {entry.id}" if entry.id else ""))
        before = entry.before or {}
        after = entry.after or {}
        for key in sorted(set(before) | set(after)):
            if key == ".id":
                continue
            old, new = before.get(key), after.get(key)
            if old == new:
                continue
            if old is not None:
                lines.append(f"    - {key}={old}")
            if new is not None:
                lines.append(f"    + {key}={new}")
    return "\n".join(lines)
