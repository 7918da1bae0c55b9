"""Database-backed auth state on SQLite and PostgreSQL: rate-limit windows and break-glass accounts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.breakglass import (
    BreakGlassAccount,
    create_account,
    disable_account,
    find_token,
    list_accounts,
)
from api.ratelimit import RateLimited, RateLimiter, RateLimitWindow
from storage.db import Database
from storage.migrate import upgrade
from tikflow.cli import app as cli_app
from tikflow.settings import get_settings


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    await asyncio.to_thread(upgrade, database_url)
    database = Database(database_url)
    yield database
    await database.dispose()


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_ratelimit_counts_per_key(db: Database) -> None:
    """Hits up to the limit pass, the next one raises with the seconds left in the window."""
    clock = FakeClock(1_000_000_010.0)
    limiter = RateLimiter(db, clock=clock)
    for _ in range(3):
        await limiter.hit("caller:alice", 3, subject="caller alice")
    with pytest.raises(RateLimited) as caught:
        await limiter.hit("caller:alice", 3, subject="caller alice")
    # Windows start on multiples of 60 s: this one started at 1_000_000_020.
    assert caught.value.retry_after == 10
    assert "at most 3 requests per minute" in str(caught.value)
    # Another key has its own count.
    await limiter.hit("caller:bob", 3, subject="caller bob")


async def test_ratelimit_shared_between_limiters(db: Database) -> None:
    """Two limiters on one database, like two api replicas, count against the same limit."""
    clock = FakeClock(1_000_000_010.0)
    replicas = [RateLimiter(db, clock=clock), RateLimiter(db, clock=clock)]
    await replicas[0].hit("device:d1", 2, subject="device r1")
    await replicas[1].hit("device:d1", 2, subject="device r1")
    with pytest.raises(RateLimited):
        await replicas[0].hit("device:d1", 2, subject="device r1")


async def test_ratelimit_concurrent_hits_exact(db: Database) -> None:
    """Concurrent hits are counted atomically: exactly ``limit`` of them pass."""
    limiter = RateLimiter(db, clock=FakeClock(1_000_000_010.0))

    async def one() -> bool:
        try:
            await limiter.hit("caller:burst", 10, subject="caller burst")
            return True
        except RateLimited:
            return False

    results = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(25))), timeout=60)
    assert results.count(True) == 10


async def test_ratelimit_window_resets_and_prunes(db: Database) -> None:
    """A new window starts from zero, and windows older than the previous one are deleted."""
    clock = FakeClock(1_000_000_010.0)
    limiter = RateLimiter(db, clock=clock)
    await limiter.hit("caller:alice", 1, subject="caller alice")
    with pytest.raises(RateLimited):
        await limiter.hit("caller:alice", 1, subject="caller alice")

    clock.now += 60
    await limiter.hit("caller:alice", 1, subject="caller alice")
    clock.now += 60
    await limiter.hit("caller:alice", 1, subject="caller alice")
    async with db.session() as session:
        windows = (await session.scalars(select(RateLimitWindow.window_start)
                                         .order_by(RateLimitWindow.window_start))).all()
    assert windows == [1_000_000_020, 1_000_000_080]


async def test_breakglass_token_lifecycle(db: Database) -> None:
    """A created token is found by its hash until the account is disabled."""
    token = await create_account(db, name="oncall", role="admin", created_by="test")
    assert token.startswith("tfbg_")
    use = await find_token(db, token)
    assert use is not None
    assert (use.name, use.role) == ("oncall", "admin")
    assert await find_token(db, token + "x") is None

    async with db.session() as session:
        stored = await session.scalar(select(BreakGlassAccount))
    assert stored.token_sha256 != token
    assert token not in json.dumps({c.name: str(getattr(stored, c.name))
                                    for c in BreakGlassAccount.__table__.columns})
    assert stored.last_used_at is not None

    assert await disable_account(db, "oncall")
    assert await find_token(db, token) is None
    assert not await disable_account(db, "oncall")
    # The name is free again and the disabled row stays for the record.
    await create_account(db, name="oncall", role="reader", created_by="test")
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(BreakGlassAccount)) == 2


async def test_breakglass_expiry(db: Database) -> None:
    """An expired break-glass token is refused."""
    token = await create_account(db, name="short", role="reader", created_by="test",
                                 valid_for=timedelta(seconds=-1))
    assert await find_token(db, token) is None


@pytest.mark.parametrize("name, role, message", [
    ("On Call", "admin", "account name"),
    ("oncall", "root", "role 'root' is unknown"),
])
async def test_breakglass_rejects_bad_input(db: Database, name: str, role: str, message: str) -> None:
    """Invalid names and unknown roles are rejected with a message naming the fix."""
    with pytest.raises(ValueError, match=message):
        await create_account(db, name=name, role=role, created_by="test")


async def test_breakglass_duplicate_name(db: Database) -> None:
    """A second active account with the same name is rejected."""
    await create_account(db, name="oncall", role="admin", created_by="test")
    with pytest.raises(ValueError, match="already exists"):
        await create_account(db, name="oncall", role="admin", created_by="test")
    assert [a.name for a in await list_accounts(db)] == ["oncall"]


def test_breakglass_cli_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI creates, lists and disables accounts, and prints the token only on creation."""
    url = f"sqlite+aiosqlite:///{tmp_path}/tikflow.db"
    upgrade(url)
    monkeypatch.setenv("TIKFLOW_DATABASE__URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        created = runner.invoke(cli_app, ["auth", "break-glass", "create", "oncall", "--role", "approver"])
        listed = runner.invoke(cli_app, ["auth", "break-glass", "list"])
        disabled = runner.invoke(cli_app, ["auth", "break-glass", "disable", "oncall"])
        again = runner.invoke(cli_app, ["auth", "break-glass", "disable", "oncall"])
        bad = runner.invoke(cli_app, ["auth", "break-glass", "create", "Bad Name"])
    finally:
        get_settings.cache_clear()
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("tfbg_")
    assert listed.exit_code == 0
    assert "approver" in listed.stdout
    assert token not in listed.stdout
    assert disabled.exit_code == 0
    assert again.exit_code == 1
    assert "no active break-glass account named oncall" in again.output
    assert bad.exit_code == 2
    assert "account name" in bad.output


def test_auth_matrix_cli_shows_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tikflow auth matrix --json` prints the effective matrix with configured overrides."""
    monkeypatch.setenv("TIKFLOW_AUTH__MATRIX", json.dumps({"operator": {"apply": ["lab"]}}))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["auth", "matrix", "--json"])
        table = CliRunner().invoke(cli_app, ["auth", "matrix"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    matrix = json.loads(result.stdout)
    assert matrix["operator"]["apply"] == ["lab"]
    assert matrix["reader"]["read"] == ["lab", "staging", "prod"]
    assert matrix["reader"]["apply"] == []
    assert matrix["admin"]["admin"] == ["lab", "staging", "prod"]
    assert table.exit_code == 0
    assert "operator" in table.stdout
