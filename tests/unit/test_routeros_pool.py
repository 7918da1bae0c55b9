"""Unit tests for DevicePool: reuse, per-device limits and dropping broken connections."""

import asyncio
from dataclasses import replace

import pytest

from routeros.errors import ConnectionLost, DeviceTimeout, InvalidValue
from routeros.pool import DevicePool
from routeros.target import DeviceTarget

TARGET = DeviceTarget(host="127.0.0.1", port=8728, transport="api", username="u", password="p")


class FakeClient:
    """Stands in for a transport client; records whether it was closed."""

    def __init__(self, target: DeviceTarget, number: int) -> None:
        self.target = target
        self.number = number
        self.closed = False
        self.healthy = True

    async def close(self) -> None:
        self.closed = True
        self.healthy = False


class FakeOpener:
    """Opens numbered FakeClients and remembers them."""

    def __init__(self) -> None:
        self.opened: list[FakeClient] = []

    async def __call__(self, target: DeviceTarget) -> FakeClient:
        client = FakeClient(target, len(self.opened))
        self.opened.append(client)
        return client


def make_pool(**kwargs: object) -> tuple[DevicePool, FakeOpener]:
    opener = FakeOpener()
    return DevicePool(opener=opener, **kwargs), opener  # type: ignore[arg-type]


async def test_pool_reuses_idle_connection() -> None:
    """Two sessions in a row share one connection."""
    pool, opener = make_pool()
    async with pool.session("r1", TARGET) as first:
        pass
    async with pool.session("r1", TARGET) as second:
        pass
    assert first is second
    assert len(opener.opened) == 1
    assert pool.idle_count("r1") == 1


async def test_pool_limits_sessions_per_device() -> None:
    """A third session waits until one of two busy slots is released."""
    pool, opener = make_pool(max_per_device=2)
    release = asyncio.Event()
    two_entered = asyncio.Event()
    entered: list[int] = []

    async def hold(index: int) -> None:
        async with pool.session("r1", TARGET):
            entered.append(index)
            if len(entered) == 2:
                two_entered.set()
            await release.wait()

    tasks = [asyncio.create_task(hold(index)) for index in range(3)]
    await asyncio.wait_for(two_entered.wait(), timeout=2)
    assert pool.free_slots("r1") == 0
    assert len(entered) == 2
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=2)
    assert len(entered) == 3
    assert len(opener.opened) == 2
    assert pool.free_slots("r1") == 2


async def test_pool_devices_do_not_share_slots() -> None:
    """A device with every slot busy does not delay another device."""
    pool, _ = make_pool(max_per_device=1)
    release = asyncio.Event()
    held = asyncio.Event()

    async def hold() -> None:
        async with pool.session("stuck", TARGET):
            held.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await asyncio.wait_for(held.wait(), timeout=2)
    assert pool.free_slots("stuck") == 0
    async with asyncio.timeout(2):
        async with pool.session("other", TARGET) as client:
            assert client is not None
    release.set()
    await asyncio.wait_for(task, timeout=2)


async def test_pool_drops_connection_after_retryable_error() -> None:
    """A retryable error closes the connection instead of returning it."""
    pool, opener = make_pool()
    with pytest.raises(ConnectionLost):
        async with pool.session("r1", TARGET):
            raise ConnectionLost("peer closed")
    assert opener.opened[0].closed
    assert pool.idle_count("r1") == 0
    assert pool.free_slots("r1") == 2


async def test_pool_keeps_connection_after_device_answer() -> None:
    """A trap such as InvalidValue leaves the connection usable."""
    pool, opener = make_pool()
    with pytest.raises(InvalidValue):
        async with pool.session("r1", TARGET):
            raise InvalidValue("bad address")
    assert not opener.opened[0].closed
    assert pool.idle_count("r1") == 1


async def test_pool_drops_unhealthy_client() -> None:
    """A client that reports itself unhealthy is closed at check-in."""
    pool, opener = make_pool()
    async with pool.session("r1", TARGET) as client:
        client.healthy = False  # type: ignore[misc]
    assert opener.opened[0].closed
    assert pool.idle_count("r1") == 0


async def test_pool_drops_connection_on_cancel() -> None:
    """A cancelled session closes its connection, since a reply may still be in flight."""
    pool, opener = make_pool()
    started = asyncio.Event()

    async def cancelled_session() -> None:
        async with pool.session("r1", TARGET):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(cancelled_session())
    await asyncio.wait_for(started.wait(), timeout=2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=2)
    assert opener.opened[0].closed
    assert pool.free_slots("r1") == 2


async def test_pool_closes_expired_idle_connection() -> None:
    """With idle_timeout 0 every checkout opens anew and closes the stale one."""
    pool, opener = make_pool(idle_timeout=0)
    async with pool.session("r1", TARGET):
        pass
    async with pool.session("r1", TARGET):
        pass
    assert len(opener.opened) == 2
    assert opener.opened[0].closed


async def test_pool_replaces_connection_when_target_changes() -> None:
    """New credentials for a device close the connection opened with the old ones."""
    pool, opener = make_pool()
    async with pool.session("r1", TARGET):
        pass
    rotated = replace(TARGET, password="new-password")
    async with pool.session("r1", rotated) as client:
        assert client.target == rotated
    assert opener.opened[0].closed
    assert len(opener.opened) == 2


async def test_pool_acquire_timeout() -> None:
    """Waiting longer than acquire_timeout for a slot raises DeviceTimeout."""
    pool, _ = make_pool(max_per_device=1, acquire_timeout=0.05)
    release = asyncio.Event()
    held = asyncio.Event()

    async def hold() -> None:
        async with pool.session("r1", TARGET):
            held.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await asyncio.wait_for(held.wait(), timeout=2)
    with pytest.raises(DeviceTimeout, match="stayed busy"):
        async with pool.session("r1", TARGET):
            pass
    release.set()
    await asyncio.wait_for(task, timeout=2)


async def test_pool_close_closes_idle_and_rejects_new_sessions() -> None:
    """close() closes idle connections and later sessions raise RuntimeError."""
    pool, opener = make_pool()
    async with pool.session("r1", TARGET):
        pass
    await pool.close()
    assert opener.opened[0].closed
    with pytest.raises(RuntimeError, match="closed"):
        async with pool.session("r1", TARGET):
            pass


def test_pool_rejects_zero_slots() -> None:
    """max_per_device below 1 is a configuration error."""
    with pytest.raises(ValueError, match="max_per_device"):
        DevicePool(max_per_device=0)


async def test_pool_close_idle_sweeps_expired_connections() -> None:
    """close_idle closes expired idle connections of every device and keeps fresh ones."""
    stale_pool, stale_opener = make_pool(idle_timeout=0)
    async with stale_pool.session("r1", TARGET):
        pass
    async with stale_pool.session("r2", TARGET):
        pass
    assert await stale_pool.close_idle() == 2
    assert all(client.closed for client in stale_opener.opened)
    assert stale_pool.idle_count("r1") == 0

    fresh_pool, fresh_opener = make_pool(idle_timeout=60)
    async with fresh_pool.session("r1", TARGET):
        pass
    assert await fresh_pool.close_idle() == 0
    assert fresh_pool.idle_count("r1") == 1
    assert not fresh_opener.opened[0].closed
