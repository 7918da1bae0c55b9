"""Heartbeats for activities that wait on a device, shared by every activity module."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio import activity


@asynccontextmanager
async def heartbeating(interval: float = 2.0) -> AsyncIterator[None]:
    """Heartbeat every ``interval`` seconds while the block runs.

    With a heartbeat timeout on the activity, a step lost with a crashed worker is retried by
    another worker within that timeout instead of after the whole start-to-close timeout.
    """

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(interval)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
