"""Process-wide services of the api: database, inventory, device sessions, Temporal client."""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from inventory.devices import DeviceSessions, Inventory, load_key_ring
from storage.db import Database
from tikflow.settings import Settings
from tikflow.temporal import connect_temporal


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database.url, pool_size=settings.database.pool_size,
                           echo=settings.database.echo)
        self.inventory = Inventory(self.db, load_key_ring(settings))
        self.sessions = DeviceSessions(self.inventory, settings)
        self._temporal: Client | None = None
        self._temporal_lock = asyncio.Lock()

    async def temporal(self) -> Client:
        """Return the Temporal client, connecting on first use so the api starts without it."""
        async with self._temporal_lock:
            if self._temporal is None:
                self._temporal = await connect_temporal(self.settings)
            return self._temporal

    async def close(self) -> None:
        await self.sessions.close()
        await self.db.dispose()
