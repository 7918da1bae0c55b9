"""Measure memory and response time of a large simulator fleet in one process.

Run: ``.venv/bin/python bench/simulator_fleet.py --devices 1000``. It starts the fleet from
the lab sample export, then logs in to every device over the binary API at once and
prints one ``/ip/address/print`` per device, and reports peak RSS and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

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


async def main(devices: int, transports: tuple[str, ...]) -> None:
    raise_file_limit()
    started = time.monotonic()
    fleet = Fleet(devices, export=SAMPLES / "lab-router.rsc", transports=transports)
    await fleet.start()
    boot = time.monotonic() - started
    limit = asyncio.Semaphore(CONCURRENCY)
    started = time.monotonic()
    counts = await asyncio.gather(*(probe(fleet, device.name, limit) for device in fleet.devices))
    answer = time.monotonic() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    await fleet.stop()
    print(f"devices={devices} transports={','.join(transports)} start={boot:.1f}s "
          f"all-answered={answer:.1f}s peak-rss={peak_mib:.0f}MiB addresses/device={set(counts)}")


def raise_file_limit() -> None:
    """Lift the open-file soft limit to the hard limit; each device listens on several ports."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=1000, help="number of devices to start")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="comma list of transports per device")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.devices, tuple(arguments.transports.split(","))))
