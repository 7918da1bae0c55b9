"""Break-glass accounts: local bearer tokens for when the identity provider is down.

A token is shown once when the account is created and stored only as its SHA-256 hash. The
tokens are 256 random bits, so a fast hash is enough because there is nothing to brute-force.
Every use is logged at WARNING and written to the audit trail by the authenticator.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, String, select
from sqlalchemy.orm import Mapped, mapped_column

from api.authz import ROLES
from storage.db import Database
from storage.models import Base, utcnow

TOKEN_PREFIX = "tfbg_"
ISSUER = "tikflow:break-glass"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class BreakGlassAccount(Base):
    """A local emergency account; only the token's hash is stored."""

    __tablename__ = "break_glass_accounts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


@dataclass(frozen=True)
class BreakGlassUse:
    """The account a valid break-glass token belongs to."""

    account_id: str
    name: str
    role: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def looks_like_break_glass(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


async def create_account(db: Database, *, name: str, role: str, created_by: str,
                         valid_for: timedelta | None = None) -> str:
    """Create an account and return its token, which is not stored and cannot be shown again."""
    if not _NAME.match(name):
        raise ValueError(f"account name {name!r} is invalid; use 1-64 lowercase letters, digits, "
                         "'.', '_' or '-'")
    if role not in ROLES:
        raise ValueError(f"role {role!r} is unknown; use one of: {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + valid_for if valid_for else None
    async with db.session() as session:
        if await session.scalar(select(BreakGlassAccount).where(BreakGlassAccount.name == name)):
            raise ValueError(f"break-glass account {name} already exists; disable it first or "
                             "choose another name")
        session.add(BreakGlassAccount(id=secrets.token_hex(8), name=name, token_sha256=hash_token(token),
                                      role=role, created_by=created_by, expires_at=expires_at))
    return token


async def disable_account(db: Database, name: str) -> bool:
    """Disable the named account; return False when no such active account exists."""
    async with db.session() as session:
        account = await session.scalar(select(BreakGlassAccount).where(BreakGlassAccount.name == name))
        if account is None or account.disabled_at is not None:
            return False
        account.disabled_at = utcnow()
        # Free the name for a replacement account while keeping the row for the record.
        account.name = f"{name}~{account.id}"
        return True


async def list_accounts(db: Database) -> list[BreakGlassAccount]:
    async with db.session() as session:
        return list((await session.scalars(select(BreakGlassAccount)
                                           .order_by(BreakGlassAccount.created_at))).all())


async def find_token(db: Database, token: str) -> BreakGlassUse | None:
    """Return the active, unexpired account the token belongs to, recording the use."""
    async with db.session() as session:
        account = await session.scalar(select(BreakGlassAccount)
                                       .where(BreakGlassAccount.token_sha256 == hash_token(token)))
        if account is None or account.disabled_at is not None:
            return None
        now = utcnow()
        if account.expires_at is not None and _aware(account.expires_at) <= now:
            return None
        account.last_used_at = now
        return BreakGlassUse(account_id=account.id, name=account.name, role=account.role)


def _aware(value: datetime) -> datetime:
    # SQLite returns naive datetimes even for timezone-aware columns; they were stored as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
