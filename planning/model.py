"""Plan data: the change requests callers send and the resolved, hashable plan stored for apply."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Action = Literal["add", "set", "remove"]
RiskLevel = Literal["low", "medium", "high"]

PLAN_STATUSES = (
    "planned",
    "applying",
    "applied",
    "rolling_back",
    "rolled_back",
    "failed",
    "aborted",
    "needs_operator",
)
FINAL_STATUSES = frozenset({"applied", "rolled_back", "failed", "aborted"})


class ChangeRequest(BaseModel):
    """One requested change, as an MCP tool or the admin API receives it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = Field(description="Device id or name")
    path: str = Field(description="RouterOS menu path, e.g. /ip/address")
    # A plain string with the choices in the schema, so a wrong action gets tikflow's own
    # message naming the choices instead of a generic validation error.
    action: str = Field(description="add, set or remove", json_schema_extra={"enum": ["add", "set", "remove"]})
    where: dict[str, str] | None = Field(
        None, description="Select existing items by property equality, or by .id"
    )
    values: dict[str, str] | None = Field(None, description="Properties to write")

    @field_validator("where", "values", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # Agents send JSON numbers and booleans; RouterOS takes strings, booleans as yes/no.
        if not isinstance(value, dict):
            return value
        return {str(k): _to_routeros_string(v) for k, v in value.items()}


def _to_routeros_string(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    return value


class ResolvedTarget(BaseModel):
    """An existing item a set or remove applies to, with its properties at planning time."""

    model_config = ConfigDict(frozen=True)

    id: str
    before: dict[str, str]


class ResolvedChange(BaseModel):
    """A change bound to one device and, for set and remove, to the exact items it touches."""

    model_config = ConfigDict(frozen=True)

    seq: int
    device_id: str
    device_name: str
    path: str
    action: Action
    where: dict[str, str] = Field(default_factory=dict)
    values: dict[str, str] = Field(default_factory=dict)
    targets: list[ResolvedTarget] = Field(default_factory=list)
    singleton: bool = False


class DiffEntry(BaseModel):
    """Before and after of one item for the readable diff."""

    model_config = ConfigDict(frozen=True)

    seq: int
    path: str
    action: Action
    id: str | None
    before: dict[str, str] | None
    after: dict[str, str] | None


class DeviceDiff(BaseModel):
    model_config = ConfigDict(frozen=True)

    device_id: str
    device_name: str
    environment: str
    entries: list[DiffEntry]
    text: str


class RiskAssessment(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: RiskLevel
    reasons: list[str]
    blast_radius: dict[str, int]


class ResolvedPlan(BaseModel):
    """Everything a plan is: its changes, diff, risk and per-device fingerprints."""

    model_config = ConfigDict(frozen=True)

    description: str
    changes: list[ResolvedChange]
    diff: list[DeviceDiff]
    risk: RiskAssessment
    fingerprints: dict[str, dict[str, str]]
    warnings: list[str] = Field(default_factory=list)

    def content_hash(self) -> str:
        """Return the SHA-256 of the plan's canonical JSON; apply must present it unchanged."""
        payload = self.model_dump(mode="json")
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
