"""Incident switches: the global plan/apply pause and per-tool off switches, in the database.

They live in the database, not in process memory, so every api replica and worker reads the
same switch at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from storage.db import Database
from storage.models import IncidentSwitch

PAUSE_KEY = "plan_apply"
TOOL_PREFIX = "tool:"
TIER_PREFIX = "tier:"


@dataclass(frozen=True)
class SwitchState:
    key: str
    engaged: bool
    reason: str | None
    changed_by: str
    changed_at: datetime


async def read_switches(db: Database) -> list[SwitchState]:
    async with db.session() as session:
        rows = (await session.scalars(select(IncidentSwitch).order_by(IncidentSwitch.key))).all()
    return [SwitchState(r.key, r.engaged, r.reason, r.changed_by, r.changed_at) for r in rows]


async def is_paused(db: Database) -> bool:
    async with db.session() as session:
        row = await session.get(IncidentSwitch, PAUSE_KEY)
    return bool(row and row.engaged)


async def disabled_tools(db: Database) -> set[str]:
    """Return the engaged switches as names: ``tool:<name>`` keys give tool names, ``tier:<t>`` give ``tier:<t>``."""
    names = set()
    for switch in await read_switches(db):
        if switch.engaged and switch.key.startswith(TOOL_PREFIX):
            names.add(switch.key.removeprefix(TOOL_PREFIX))
        elif switch.engaged and switch.key.startswith(TIER_PREFIX):
            names.add(switch.key)
    return names


async def set_switch(db: Database, key: str, *, engaged: bool, by: str, reason: str | None) -> bool:
    """Engage or release a switch; return whether its state changed."""
    async with db.session() as session:
        row = await session.get(IncidentSwitch, key, with_for_update=True)
        if row is None:
            session.add(IncidentSwitch(key=key, engaged=engaged, reason=reason, changed_by=by))
            return engaged
        changed = row.engaged != engaged
        row.engaged, row.reason, row.changed_by = engaged, reason, by
        return changed
