"""Read latency: tikflow's transports and its MCP read tool against direct librouteros calls.

Every series reads ``/ip/address`` over one kept connection (or one MCP session), after a few
warm-up calls that open the connection and fill caches. The baseline is the same print made
with ``librouteros.async_connect`` directly, as a script without tikflow would make it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import librouteros

from bench.stats import Summary, ratio, summarize
from routeros.pool import DevicePool
from routeros.target import TRANSPORTS, DeviceTarget

WARMUP_CALLS = 5


async def time_calls(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    """Run ``call`` ``WARMUP_CALLS`` times untimed, then ``calls`` times; return seconds each."""
    for _ in range(WARMUP_CALLS):
        await call()
    durations: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        durations.append(time.perf_counter() - started)
    return durations


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` as the simulator prints it."""
    host, _, port = address.rpartition(":")
    return host, int(port)


async def time_direct_print(endpoint: dict[str, Any], username: str, password: str,
                            calls: int) -> list[float]:
    """Time ``/ip/address/print`` through librouteros alone over one connection."""
    host, port = split_address(endpoint["api"])
    api = await librouteros.async_connect(host, username, password, port=port, timeout=30)
    try:
        return await time_calls(lambda: _read_all(api), calls)
    finally:
        await api.close()


async def _read_all(api: Any) -> list[dict[str, Any]]:
    return [row async for row in api.path("ip", "address")]


def transport_target(endpoint: dict[str, Any], transport: str) -> DeviceTarget:
    """Return the admin target of a simulated device for one tikflow transport.

    ``rest`` goes to the HTTPS port (RouterOS's ``www-ssl``), pinned like ``api-ssl`` to the
    fleet's certificate fingerprint.
    """
    simulator_port = {"api": "api", "api-ssl": "api-ssl", "rest": "rest-ssl", "ssh": "ssh"}[transport]
    host, port = split_address(endpoint[simulator_port])
    pinned = endpoint["tls_fingerprint"] if transport in ("api-ssl", "rest") else None
    return DeviceTarget(host=host, port=port, transport=transport, username=endpoint["username"],
                        password=endpoint["password"], tls_fingerprint=pinned)


async def time_transport_print(endpoint: dict[str, Any], transport: str, calls: int) -> list[float]:
    """Time ``/ip/address`` prints through a ``DevicePool`` session, as activities make them."""
    target = transport_target(endpoint, transport)
    pool = DevicePool(max_per_device=1)

    async def call() -> None:
        async with pool.session(endpoint["name"], target) as client:
            await client.print("/ip/address")

    try:
        return await time_calls(call, calls)
    finally:
        await pool.close()


def comparison(series: Summary, direct: Summary) -> dict[str, Any]:
    """Return a series with its median and p95 ratios to the direct baseline."""
    return {**series.to_dict(), "median_ratio": ratio(series.median_ms, direct.median_ms),
            "p95_ratio": ratio(series.p95_ms, direct.p95_ms)}


async def measure_transports(endpoint: dict[str, Any], calls: int) -> dict[str, Any]:
    """Measure every tikflow transport and the direct baseline against one device."""
    direct = summarize(await time_direct_print(endpoint, endpoint["username"], endpoint["password"],
                                               calls))
    rows: dict[str, Any] = {"direct librouteros (api)": comparison(direct, direct)}
    for transport in TRANSPORTS:
        rows[f"tikflow {transport}"] = comparison(
            summarize(await time_transport_print(endpoint, transport, calls)), direct)
    return rows


async def measure_mcp_read(stack: Any, endpoint: dict[str, Any], calls: int) -> dict[str, Any]:
    """Measure ``ip.address.list.v1`` over MCP against a direct print with the same account.

    ``stack`` is a running api (``tests.support.stack.Stack``) where ``endpoint``'s device is
    enrolled under its own name with the service account.
    """
    username, password = endpoint["service_username"], endpoint["service_password"]
    direct = summarize(await time_direct_print(endpoint, username, password, calls))
    async with stack.mcp() as mcp:
        tool = summarize(await time_calls(
            lambda: mcp.call("ip.address.list.v1", {"device": endpoint["name"]}), calls))
    result = {
        "direct librouteros (api)": comparison(direct, direct),
        "MCP ip.address.list.v1": comparison(tool, direct),
    }
    result["MCP ip.address.list.v1"]["overhead_median_ms"] = tool.median_ms - direct.median_ms
    return result
