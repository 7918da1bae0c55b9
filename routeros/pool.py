"""Per-device connection reuse with a concurrency limit.

Each device gets a semaphore of ``max_per_device`` slots. A session takes a slot, reuses an
idle logged-in client for the same target or opens a new one, and gives both back at the end.
A client is closed instead of reused when it failed with a retryable error (timeout, lost
connection, protocol violation) or reports itself unhealthy. So a hung device keeps its own
slots for at most the command timeout, and other devices never wait for it.

The pool lives in one process; it shares nothing with other workers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import structlog

from routeros.client import DeviceClient, open_client
from routeros.errors import DeviceError, DeviceTimeout
from routeros.target import DeviceTarget

logger = structlog.get_logger(__name__)

ClientOpener = Callable[[DeviceTarget], Awaitable[DeviceClient]]


@dataclass
class _IdleClient:
    client: DeviceClient
    target: DeviceTarget
    since: float


@dataclass
class _DeviceSlots:
    semaphore: asyncio.Semaphore
    idle: list[_IdleClient] = field(default_factory=list)


class DevicePool:
    """Reuses device connections and limits concurrent sessions per device.

    Args:
        max_per_device: Concurrent sessions (and so connections) per device.
        idle_timeout: Seconds an unused connection is kept before it is closed on the next
            checkout for that device.
        acquire_timeout: Seconds to wait for a free slot, or None to wait until one is free.
            Slots free up at the latest after the command timeout of the session using them.
        opener: Opens a client for a target; tests replace it.
    """

    def __init__(
        self,
        *,
        max_per_device: int = 2,
        idle_timeout: float = 60,
        acquire_timeout: float | None = None,
        opener: ClientOpener = open_client,
    ) -> None:
        if max_per_device < 1:
            raise ValueError(f"invalid max_per_device {max_per_device}: expected 1 or more")
        self._max_per_device = max_per_device
        self._idle_timeout = idle_timeout
        self._acquire_timeout = acquire_timeout
        self._opener = opener
        self._devices: dict[str, _DeviceSlots] = {}
        self._closed = False

    @asynccontextmanager
    async def session(self, device_id: str, target: DeviceTarget) -> AsyncIterator[DeviceClient]:
        """Yield a logged-in client for the device, holding one of its slots meanwhile.

        Raises:
            DeviceTimeout: No slot became free within ``acquire_timeout``.
            DeviceError: Opening the connection failed.
            RuntimeError: The pool was closed.
        """
        if self._closed:
            raise RuntimeError("DevicePool is closed; create a new pool")
        slots = self._devices.setdefault(
            device_id, _DeviceSlots(asyncio.Semaphore(self._max_per_device))
        )
        await self._acquire(slots, device_id)
        try:
            client = await self._checkout(slots, target)
            reusable = False
            try:
                yield client
                reusable = True
            except DeviceError as exc:
                reusable = not exc.retryable
                raise
            except Exception:
                # The caller's own failure leaves the connection in step.
                reusable = True
                raise
            finally:
                await self._checkin(slots, client, target, reusable, device_id)
        finally:
            slots.semaphore.release()

    async def close(self) -> None:
        """Close every idle connection; sessions still running close theirs when they end."""
        self._closed = True
        for slots in self._devices.values():
            idle, slots.idle = slots.idle, []
            for entry in idle:
                await entry.client.close()

    async def close_idle(self) -> int:
        """Close idle connections older than ``idle_timeout`` on every device.

        Checkouts already close a device's stale connections; a worker calls this now and then
        so devices that are no longer used do not keep connections open. Returns how many
        connections were closed.
        """
        now = time.monotonic()
        closed = 0
        for slots in self._devices.values():
            expired = [entry for entry in slots.idle if now - entry.since >= self._idle_timeout]
            slots.idle = [entry for entry in slots.idle if entry not in expired]
            for entry in expired:
                await entry.client.close()
            closed += len(expired)
        return closed

    def idle_count(self, device_id: str) -> int:
        """Return how many idle connections the pool keeps for the device."""
        slots = self._devices.get(device_id)
        return len(slots.idle) if slots else 0

    def free_slots(self, device_id: str) -> int:
        """Return how many more sessions the device can start without waiting."""
        slots = self._devices.get(device_id)
        # Semaphore keeps its count in _value; there is no public accessor.
        return slots.semaphore._value if slots else self._max_per_device

    async def _acquire(self, slots: _DeviceSlots, device_id: str) -> None:
        try:
            await asyncio.wait_for(slots.semaphore.acquire(), timeout=self._acquire_timeout)
        except TimeoutError:
            raise DeviceTimeout(
                f"all {self._max_per_device} sessions to device {device_id!r} stayed busy for "
                f"{self._acquire_timeout:g}s; retry later or raise max_per_device"
            ) from None

    async def _checkout(self, slots: _DeviceSlots, target: DeviceTarget) -> DeviceClient:
        """Return a fresh-enough idle client for ``target``, closing stale ones, or open one."""
        now = time.monotonic()
        chosen: DeviceClient | None = None
        keep: list[_IdleClient] = []
        stale: list[_IdleClient] = []
        for entry in slots.idle:
            fresh = now - entry.since < self._idle_timeout
            usable = fresh and entry.target == target and getattr(entry.client, "healthy", True)
            if usable and chosen is None:
                chosen = entry.client
            elif usable:
                keep.append(entry)
            else:
                stale.append(entry)
        slots.idle = keep
        for entry in stale:
            await entry.client.close()
        if chosen is not None:
            return chosen
        return await self._opener(target)

    async def _checkin(
        self,
        slots: _DeviceSlots,
        client: DeviceClient,
        target: DeviceTarget,
        reusable: bool,
        device_id: str,
    ) -> None:
        if reusable and not self._closed and getattr(client, "healthy", True):
            slots.idle.append(_IdleClient(client, target, time.monotonic()))
            return
        logger.info("routeros_connection_dropped", device_id=device_id, reusable=reusable)
        await client.close()
