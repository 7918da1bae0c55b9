"""The real stack the end-to-end benchmarks run against.

The stack is a Temporal dev server, a migrated database (PostgreSQL from the Debian package
when it is installed, else SQLite), one worker and one api process. The counting simulator
fleet runs in a process of its own, and its devices are enrolled over the binary API with the
service account. The processes start the way the end-to-end tests start them (``tests.support``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.fleet_process import FleetProcess
from bench.latency import split_address
from inventory.devices import Inventory, enrol_device, load_key_ring
from storage.db import Database
from tests.support.postgres import postgres_bin_dir, start_postgres
from tests.support.stack import Stack, start_stack
from tests.support.temporal import start_temporal_dev_server

ENROL_CONCURRENCY = 20
WORKER_READY_TIMEOUT = 120.0
# The api's rate limits (60 tool calls per device and 120 per caller each minute) would stop
# the latency series and the rollout's plan. The limiter still counts every call, so its cost
# stays in the measured time.
BENCH_RATE_LIMITS = {
    "TIKFLOW_AUTH__RATE_LIMITS__PER_CALLER_PER_MINUTE": "1000000",
    "TIKFLOW_AUTH__RATE_LIMITS__PER_DEVICE_PER_MINUTE": "1000000",
}


@dataclass
class Environment:
    """A running stack with its fleet.

    Attributes:
        stack: The api and worker processes, and how to reach them.
        fleet: The simulator process; every device in it is enrolled under its own name.
        database: ``postgresql`` or ``sqlite``.
    """

    stack: Stack
    fleet: FleetProcess
    database: str

    def worker_pid(self) -> int:
        """Return the process id of the first worker."""
        return self._pid("worker0")

    def api_pid(self) -> int:
        """Return the process id of the api."""
        return self._pid("api")

    def _pid(self, name: str) -> int:
        return next(process.pid for process_name, process in self.stack.supervisor.processes
                    if process_name == name)


def database_kind() -> str:
    """Return ``postgresql`` when its server binaries are installed, else ``sqlite``."""
    try:
        postgres_bin_dir()
    except RuntimeError:
        return "sqlite"
    return "postgresql"


@asynccontextmanager
async def running_environment(devices: int, var_dir: Path) -> AsyncIterator[Environment]:
    """Start everything, enrol ``devices`` simulated devices, and stop it all on exit."""
    async with AsyncExitStack() as cleanup:
        temporal = start_temporal_dev_server()
        cleanup.callback(temporal.stop)
        kind = database_kind()
        if kind == "postgresql":
            postgres = start_postgres()
            cleanup.callback(postgres.stop)
            url = postgres.create_database()
        else:
            url = f"sqlite+aiosqlite:///{var_dir}/tikflow.db"
        fleet = FleetProcess(devices, transports=("api",))
        cleanup.callback(fleet.stop)
        fleet.wait_ready()
        # start_stack passes this process's environment on to the api and worker.
        os.environ.update(BENCH_RATE_LIMITS)
        stack = start_stack(database_url=url, temporal_address=temporal.address, var_dir=var_dir)
        cleanup.callback(stack.stop)
        await enrol_fleet(stack, fleet.endpoints)
        wait_for_log(stack.log_dir / "worker0.log", "worker started", WORKER_READY_TIMEOUT)
        yield Environment(stack=stack, fleet=fleet, database=kind)


async def enrol_fleet(stack: Stack, endpoints: list[dict[str, Any]]) -> None:
    """Enrol every device in the lab environment, ``ENROL_CONCURRENCY`` at a time."""
    db = Database(stack.settings.database.url)
    inventory = Inventory(db, load_key_ring(stack.settings))
    limit = asyncio.Semaphore(ENROL_CONCURRENCY)

    async def enrol(endpoint: dict[str, Any]) -> None:
        host, port = split_address(endpoint["api"])
        async with limit:
            await enrol_device(inventory, stack.settings, name=endpoint["name"], address=host,
                               port=port, transport="api", environment="lab",
                               username=endpoint["service_username"],
                               password=endpoint["service_password"], tags=["bench"])

    try:
        await asyncio.gather(*(enrol(endpoint) for endpoint in endpoints))
    finally:
        await db.dispose()


def wait_for_log(path: Path, text: str, timeout: float) -> None:
    """Wait until ``text`` appears in the log file at ``path``.

    Raises:
        TimeoutError: The text did not appear within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{path.name} did not log {text!r} within {timeout:.0f} s; read {path}")


def resident_mib(pid: int) -> float:
    """Return the resident set size of process ``pid`` in MiB, from ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line; is the process a zombie?")
