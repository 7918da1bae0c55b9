"""Per-caller and per-device rate limits, counted in the database.

Fixed one-minute windows: each hit increments the row for (key, window) with an
``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` upsert, which is atomic on PostgreSQL and
SQLite, so every api replica counts against the same limit.

NOTE: fixed windows let a caller make up to twice the limit within one minute that spans a
window boundary. A sliding window would avoid that but needs a row per hit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import BigInteger, Integer, String, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import Database
from storage.models import Base

WINDOW_SECONDS = 60


class RateLimitWindow(Base):
    """Hits counted for one key in one fixed window."""

    __tablename__ = "rate_limit_windows"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class RateLimited(Exception):
    """A limit was exceeded; ``retry_after`` is the number of seconds until the window resets."""

    def __init__(self, *, subject: str, limit: int, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded for {subject}: at most {limit} requests per "
                         f"minute; retry in {retry_after} s")
        self.subject = subject
        self.limit = limit
        self.retry_after = retry_after


class RateLimiter:
    """Count hits per key in the database and raise ``RateLimited`` above the limit."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self._clock = clock
        self._last_prune = 0

    async def hit(self, key: str, limit: int, *, subject: str) -> None:
        """Count one hit for ``key``; raise ``RateLimited`` when it is over ``limit``."""
        now = self._clock()
        window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        count = await self._increment(key[:255], window)
        if count > limit:
            raise RateLimited(subject=subject, limit=limit,
                              retry_after=max(1, int(window + WINDOW_SECONDS - now)))
        if window != self._last_prune:
            self._last_prune = window
            await self._prune(window)

    async def _increment(self, key: str, window: int) -> int:
        insert = pg_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert(RateLimitWindow)
            .values(key=key, window_start=window, count=1)
            .on_conflict_do_update(index_elements=["key", "window_start"],
                                   set_={"count": RateLimitWindow.count + 1})
            .returning(RateLimitWindow.count)
        )
        async with self.db.session() as session:
            return int((await session.execute(statement)).scalar_one())

    async def _prune(self, window: int) -> None:
        # Each process prunes once per window; old rows only cost space, never correctness.
        async with self.db.session() as session:
            await session.execute(delete(RateLimitWindow)
                                  .where(RateLimitWindow.window_start < window - WINDOW_SECONDS))
