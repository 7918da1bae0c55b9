"""The probe server serves /healthz and /readyz over real loopback sockets."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tikflow import probes
from tikflow.probes import ProbeServer

TIMEOUT = 10


async def raw_request(port: int, data: bytes) -> bytes:
    """Send raw bytes and return the whole response."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


async def test_probes_healthz_ok():
    """GET /healthz returns 200 while the server runs."""
    async with ProbeServer("127.0.0.1", 0) as server, httpx.AsyncClient(timeout=TIMEOUT) as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_probes_readyz_follows_check():
    """GET /readyz returns 200 or 503 following the readiness check."""
    state = {"ready": False}

    async def ready() -> bool:
        return state["ready"]

    async with ProbeServer("127.0.0.1", 0, ready=ready) as server, httpx.AsyncClient(
        timeout=TIMEOUT
    ) as client:
        url = f"http://127.0.0.1:{server.port}/readyz"
        not_ready = await client.get(url)
        state["ready"] = True
        ready_now = await client.get(url)

    assert not_ready.status_code == 503
    assert not_ready.json() == {"ready": False}
    assert ready_now.status_code == 200
    assert ready_now.json() == {"ready": True}


async def test_probes_failing_check_is_not_ready():
    """A readiness check that raises yields 503 without the exception text."""

    async def broken() -> bool:
        raise RuntimeError("database password is hunter2")

    async with ProbeServer("127.0.0.1", 0, ready=broken) as server, httpx.AsyncClient(
        timeout=TIMEOUT
    ) as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/readyz")

    assert response.status_code == 503
    assert "hunter2" not in response.text


async def test_probes_slow_check_times_out(monkeypatch):
    """A readiness check slower than the limit yields 503 instead of a hanging probe."""
    monkeypatch.setattr(probes, "READY_TIMEOUT_SECONDS", 0.05)
    release = asyncio.Event()

    async def slow() -> bool:
        await release.wait()
        return True

    async with ProbeServer("127.0.0.1", 0, ready=slow) as server, httpx.AsyncClient(
        timeout=TIMEOUT
    ) as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/readyz")
    release.set()

    assert response.status_code == 503
    assert response.json()["error"] == "readiness check timed out"


async def test_probes_unknown_path_and_method():
    """Other paths get 404 and other methods 405."""
    async with ProbeServer("127.0.0.1", 0) as server, httpx.AsyncClient(timeout=TIMEOUT) as client:
        base = f"http://127.0.0.1:{server.port}"
        missing = await client.get(f"{base}/metrics")
        posted = await client.post(f"{base}/healthz")

    assert missing.status_code == 404
    assert posted.status_code == 405


async def test_probes_garbage_request_gets_400():
    """Non-UTF-8 bytes and malformed request lines get 400, not a crash."""
    async with ProbeServer("127.0.0.1", 0) as server:
        garbage = await raw_request(server.port, b"\xff\xfe\x00 nonsense\r\n\r\n")
        oversized = await raw_request(server.port, b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 20_000)
        healthy = await raw_request(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")

    assert garbage.startswith(b"HTTP/1.1 400 ")
    assert oversized.startswith(b"HTTP/1.1 400 ")
    assert healthy.startswith(b"HTTP/1.1 200 ")
    assert json.loads(healthy.split(b"\r\n\r\n", 1)[1]) == {"status": "ok"}


async def test_probes_port_requires_start():
    """Asking for the port before start raises a clear error, and stop is idempotent."""
    server = ProbeServer("127.0.0.1", 0)

    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    await server.stop()
