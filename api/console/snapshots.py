"""Snapshots of a device for the console: listing and a side-by-side diff of two of them."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from sqlalchemy import func, select

from storage.db import Database
from storage.models import Snapshot

# Unchanged lines shown around each change, as in ``diff -U3``.
CONTEXT_LINES = 3
# Exports of big routers run to tens of thousands of lines; a diff past this many rows is cut.
MAX_DIFF_ROWS = 4000


@dataclass(frozen=True)
class DiffRow:
    """One row of a side-by-side diff; ``kind`` is equal, changed, added, removed or gap."""

    kind: str
    left_number: int | None
    left: str
    right_number: int | None
    right: str


async def list_snapshots(db: Database, device_id: str, *, limit: int = 50) -> list[Snapshot]:
    """Return the device's newest snapshots first, without loading their content twice."""
    async with db.session() as session:
        rows = await session.scalars(select(Snapshot).where(Snapshot.device_id == device_id)
                                     .order_by(Snapshot.taken_at.desc(), Snapshot.id.desc())
                                     .limit(limit))
        return list(rows.all())


async def latest_snapshot_times(db: Database) -> dict[str, object]:
    """Return the time of each device's newest snapshot, keyed by device id."""
    async with db.session() as session:
        rows = await session.execute(select(Snapshot.device_id, func.max(Snapshot.taken_at))
                                     .group_by(Snapshot.device_id))
        return {device_id: taken_at for device_id, taken_at in rows.all()}


async def load_snapshot(db: Database, device_id: str, snapshot_id: int) -> Snapshot | None:
    """Return the snapshot only when it belongs to ``device_id``."""
    async with db.session() as session:
        snapshot = await session.get(Snapshot, snapshot_id)
    if snapshot is None or snapshot.device_id != device_id:
        return None
    return snapshot


def snapshot_lines(snapshot: Snapshot) -> list[str]:
    """Return the snapshot as text lines: its export, or its tables as sorted JSON."""
    if snapshot.export_text:
        return snapshot.export_text.splitlines()
    return json.dumps(snapshot.tables, indent=1, sort_keys=True, ensure_ascii=False).splitlines()


def side_by_side(left: list[str], right: list[str]) -> tuple[list[DiffRow], bool]:
    """Return the changed regions of two texts as side-by-side rows, and whether rows were cut."""
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    rows: list[DiffRow] = []
    for group in matcher.get_grouped_opcodes(CONTEXT_LINES):
        if rows:
            rows.append(DiffRow("gap", None, "…", None, "…"))
        for tag, i1, i2, j1, j2 in group:
            rows.extend(_rows_for(tag, left, right, i1, i2, j1, j2))
        if len(rows) > MAX_DIFF_ROWS:
            return rows[:MAX_DIFF_ROWS], True
    return rows, False


def _rows_for(tag: str, left: list[str], right: list[str], i1: int, i2: int,
              j1: int, j2: int) -> list[DiffRow]:
    if tag == "equal":
        return [DiffRow("equal", i + 1, left[i], j + 1, right[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)]
    rows = []
    for offset in range(max(i2 - i1, j2 - j1)):
        i, j = i1 + offset, j1 + offset
        has_left, has_right = i < i2, j < j2
        if has_left and has_right:
            kind = "changed"
        elif has_left:
            kind = "removed"
        else:
            kind = "added"
        rows.append(DiffRow(kind, i + 1 if has_left else None, left[i] if has_left else "",
                            j + 1 if has_right else None, right[j] if has_right else ""))
    return rows
