"""SQLAlchemy models: devices, encrypted credentials, plans and their changes, audit, snapshots.

The same models run on SQLite (the embedded default) and PostgreSQL; JSON columns use the
generic ``JSON`` type and timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Device(Base):
    """A RouterOS device under management."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("address", "port", name="uq_devices_address_port"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(16))
    environment: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tls_fingerprint: Mapped[str | None] = mapped_column(String(128), default=None)
    identity: Mapped[str | None] = mapped_column(String(255), default=None)
    version: Mapped[str | None] = mapped_column(String(64), default=None)
    board: Mapped[str | None] = mapped_column(String(128), default=None)
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Credential(Base):
    """A device login; the secret is encrypted with the envelope key named by ``key_id``."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(128))
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # pending (stored, not yet proven), active, retired, or failed (never worked).
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")


class Plan(Base):
    """An immutable, content-hashed change plan and its apply progress."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(255))
    plan_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24), default="planned", index=True)
    risk: Mapped[str] = mapped_column(String(16))
    risk_reasons: Mapped[list[Any]] = mapped_column(default=list)
    device_ids: Mapped[list[Any]] = mapped_column(default=list)
    environments: Mapped[list[Any]] = mapped_column(default=list)
    fingerprints: Mapped[dict[str, Any]] = mapped_column(default=dict)
    diff: Mapped[list[Any]] = mapped_column(default=list)
    workflow_id: Mapped[str | None] = mapped_column(String(128), default=None)
    status_detail: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    approval_mode: Mapped[str] = mapped_column(String(16), default="auto", server_default="auto")
    rollout: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")


class PlanChange(Base):
    """One step of a plan: a single add, set or remove on one device path."""

    __tablename__ = "plan_changes"
    __table_args__ = (UniqueConstraint("plan_id", "seq", name="uq_plan_changes_plan_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    path: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(16))
    selector: Mapped[dict[str, Any]] = mapped_column(default=dict)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    targets: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(24), default="pending")
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """One audited action: a tool call, admin action, approval, switch or workflow outcome."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255), index=True)
    actor_issuer: Mapped[str | None] = mapped_column(String(255), default=None)
    role: Mapped[str | None] = mapped_column(String(32), default=None)
    action: Mapped[str] = mapped_column(String(128), index=True)
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    device_ids: Mapped[list[Any]] = mapped_column(default=list)
    plan_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    result: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    workflow_id: Mapped[str | None] = mapped_column(String(160), default=None)


class Snapshot(Base):
    """Device configuration at a point in time: selected tables, an export, or both."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True)
    taken_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(String(64))
    plan_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    tables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    export_text: Mapped[str | None] = mapped_column(Text, default=None)
    sha256: Mapped[str] = mapped_column(String(64))


class EnrolmentToken(Base):
    """A one-time token that lets a bootstrap script register one device; only its hash is kept."""

    __tablename__ = "enrolment_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(16))
    transport: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(255), default=None)
    port: Mapped[int | None] = mapped_column(Integer, default=None)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    capabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(default=None)
    device_id: Mapped[str | None] = mapped_column(String(32), default=None)


class IncidentSwitch(Base):
    """An incident control: the global plan/apply pause (``plan_apply``) or a tool switched off
    (``tool:<name>``). A row that is not ``engaged`` keeps who released it and when."""

    __tablename__ = "incident_switches"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    engaged: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    changed_by: Mapped[str] = mapped_column(String(255))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
