"""Measure memory and response time of a large simulator fleet in one process.

Run: ``.venv/bin/python -m bench.simulator_fleet --devices 1000``. It starts the fleet from
the lab sample export, then logs in to every device over the binary API at once and
prints one ``/ip/address/print`` per device, and reports resident memory and wall times.
``--json`` prints the same as one JSON object, which ``bench.run`` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path
from typing import Any

import librouteros

from simulator.fleet import TRANSPORTS, Fleet
from simulator.runner import SAMPLES

CLIENT_TIMEOUT = 30.0
CONCURRENCY = 200


async def probe(fleet: Fleet, name: str, limit: asyncio.Semaphore) -> int:
    """Log in to one device and count its addresses."""
    async with limit:
        port = fleet.device(name).ports["api"]
        api = await librouteros.async_connect(
            "127.0.0.1", "admin", fleet.admin_password, port=port, timeout=CLIENT_TIMEOUT
        )
        rows = [row async for row in api.path("ip", "address")]
        await api.close()
        return len(rows)


async def measure(devices: int, transports: tuple[str, ...]) -> dict[str, Any]:
    """Start ``devices`` devices, probe each once, and return times (s) and memory (MiB).

    ``rss_before_mib`` is taken after the imports, before the fleet exists, so
    ``(rss_started_mib - rss_before_mib) / devices`` is the memory one device costs.
    """
    raise_file_limit()
    rss_before = memory_mib("VmRSS")
    started = time.monotonic()
    fleet = Fleet(devices, export=SAMPLES / "lab-router.rsc", transports=transports)
    await fleet.start()
    boot = time.monotonic() - started
    rss_started = memory_mib("VmRSS")
    limit = asyncio.Semaphore(CONCURRENCY)
    answered_at = time.monotonic()
    counts = await asyncio.gather(*(probe(fleet, device.name, limit) for device in fleet.devices))
    answered = time.monotonic() - answered_at
    result = {
        "devices": devices,
        "transports": list(transports),
        "start_seconds": boot,
        "answer_seconds": answered,
        "ready_seconds": boot + answered,
        "rss_before_mib": rss_before,
        "rss_started_mib": rss_started,
        "rss_answered_mib": memory_mib("VmRSS"),
        "peak_rss_mib": memory_mib("VmHWM"),
        "addresses_per_device": sorted(set(counts)),
    }
    await fleet.stop()
    return result


def memory_mib(field: str) -> float:
    """Return a memory field of ``/proc/self/status`` in MiB: ``VmRSS`` now, ``VmHWM`` at peak.

    ``VmHWM`` starts afresh at exec, unlike ``ru_maxrss``, which on Linux keeps the parent's
    peak when a large process starts this one.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} line")


def raise_file_limit() -> None:
    """Lift the open-file soft limit to the hard limit; each device listens on several ports."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    """Parse the command line, measure and print the result."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=1000, help="number of devices to start")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="comma list of transports per device")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args()
    result = asyncio.run(measure(arguments.devices, tuple(arguments.transports.split(","))))
    if arguments.json:
        print(json.dumps(result))
        return
    print(f"devices={result['devices']} transports={','.join(result['transports'])} "
          f"start={result['start_seconds']:.1f}s all-answered={result['answer_seconds']:.1f}s "
          f"rss={result['rss_answered_mib']:.0f}MiB peak-rss={result['peak_rss_mib']:.0f}MiB "
          f"addresses/device={result['addresses_per_device']}")


if __name__ == "__main__":
    main()
