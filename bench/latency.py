"""Read latency: tikflow's transports and its MCP read tool against direct librouteros calls.

Every series reads ``/ip/address`` over one kept connection (or one MCP session), after a few
warm-up calls that open the connection and fill caches, and the series take turns call by
call. The baseline is the same print made with ``librouteros.async_connect`` directly, as a
script without tikflow would make it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import librouteros

from bench.stats import Summary, ratio, summarize
from routeros.pool import DevicePool
from routeros.target import TRANSPORTS, DeviceTarget
from tests.support.stack import Stack

WARMUP_CALLS = 5
DIRECT = "direct librouteros (api)"
MCP_SERIES = "MCP ip.address.list.v1"


Call = Callable[[], Awaitable[Any]]


async def time_interleaved(series: dict[str, Call], calls: int) -> dict[str, list[float]]:
    """Time ``calls`` rounds in which every series makes one call; return seconds per call.

    Each series first makes ``WARMUP_CALLS`` untimed calls. Taking the series in turn within
    each round spreads load from other processes evenly over them, so the ratios between the
    series are fairer than with one block of calls after another.
    """
    for call in series.values():
        for _ in range(WARMUP_CALLS):
            await call()
    durations: dict[str, list[float]] = {name: [] for name in series}
    for _ in range(calls):
        for name, call in series.items():
            started = time.perf_counter()
            await call()
            durations[name].append(time.perf_counter() - started)
    return durations


def split_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` as the simulator prints it."""
    host, _, port = address.rpartition(":")
    return host, int(port)


@asynccontextmanager
async def direct_print(endpoint: dict[str, Any], username: str, password: str) -> AsyncIterator[Call]:
    """Yield a call that prints ``/ip/address`` through librouteros alone, over one connection."""
    host, port = split_address(endpoint["api"])
    api = await librouteros.async_connect(host, username, password, port=port, timeout=30)
    try:
        yield lambda: _read_all(api)
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


def pooled_print(pool: DevicePool, endpoint: dict[str, Any], transport: str) -> Call:
    """Return a call that prints ``/ip/address`` in a ``DevicePool`` session, as activities do.

    Each transport gets its own device id in the pool, so the series keep one connection each.
    """
    target = transport_target(endpoint, transport)

    async def call() -> None:
        async with pool.session(f"{endpoint['name']}-{transport}", target) as client:
            await client.print("/ip/address")

    return call


def comparison(series: Summary, direct: Summary) -> dict[str, Any]:
    """Return a series with its median and p95 ratios to the direct baseline."""
    return {**series.to_dict(), "median_ratio": ratio(series.median_ms, direct.median_ms),
            "p95_ratio": ratio(series.p95_ms, direct.p95_ms)}


def compare_to_first(durations: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Summarize every series and give its ratios to the first one, the baseline."""
    summaries = {name: summarize(seconds) for name, seconds in durations.items()}
    baseline = next(iter(summaries.values()))
    return {name: comparison(summary, baseline) for name, summary in summaries.items()}


async def measure_transports(endpoint: dict[str, Any], calls: int) -> dict[str, Any]:
    """Measure every tikflow transport and the direct baseline against one device."""
    pool = DevicePool(max_per_device=1)
    try:
        async with direct_print(endpoint, endpoint["username"], endpoint["password"]) as direct:
            series = {DIRECT: direct}
            for transport in TRANSPORTS:
                series[f"tikflow {transport}"] = pooled_print(pool, endpoint, transport)
            return compare_to_first(await time_interleaved(series, calls))
    finally:
        await pool.close()


async def measure_mcp_read(stack: Stack, endpoint: dict[str, Any], calls: int) -> dict[str, Any]:
    """Measure ``ip.address.list.v1`` over MCP against a direct print with the same account.

    ``stack`` is a running api where ``endpoint``'s device is enrolled under its own name with
    the service account.
    """
    username, password = endpoint["service_username"], endpoint["service_password"]
    async with direct_print(endpoint, username, password) as direct, stack.mcp() as mcp:
        series = {DIRECT: direct,
                  MCP_SERIES: lambda: mcp.call("ip.address.list.v1", {"device": endpoint["name"]})}
        rows = compare_to_first(await time_interleaved(series, calls))
    rows[MCP_SERIES]["overhead_median_ms"] = rows[MCP_SERIES]["median_ms"] - rows[DIRECT]["median_ms"]
    return rows
