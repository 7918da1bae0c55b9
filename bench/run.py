"""Run every benchmark in one go and write ``results.md`` and ``results.json``.

Usage: ``python -m bench.run [--quick] [--only NAME ...] [--output DIR]``. ``make bench`` runs
the full sizes and writes into ``bench/``. ``--quick`` runs small sizes as a smoke check and
writes into ``bench/out/``, and ``--output`` picks another folder.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from bench import sections
from bench.environment import Environment, resident_mib, running_environment
from bench.fleet_process import FleetProcess
from bench.latency import measure_mcp_read, measure_transports
from bench.report import machine_info, write_results
from bench.rollout import measure_rollout

BENCH_DIR = Path(__file__).resolve().parent
FLEET_TIMEOUT = 600.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is: calls per latency series, fleet and rollout devices."""

    calls: int
    fleet_devices: int
    rollout_devices: int
    delay: float = 0.02


FULL = Sizes(calls=200, fleet_devices=1000, rollout_devices=200)
QUICK = Sizes(calls=30, fleet_devices=100, rollout_devices=20)


@dataclass
class Context:
    """What the benchmarks share: sizes, the stack (started on first use) and fleet figures."""

    sizes: Sizes
    needs_rollout_fleet: bool
    cleanup: AsyncExitStack
    var_dir: Path
    environment: Environment | None = None
    idle_rss_mib: dict[str, float] = field(default_factory=dict)
    fleet_result: dict[str, Any] | None = None

    async def stack(self) -> Environment:
        """Return the running stack, starting it and sampling the idle RSS on first use."""
        if self.environment is None:
            devices = self.sizes.rollout_devices if self.needs_rollout_fleet else 1
            self.environment = await self.cleanup.enter_async_context(
                running_environment(devices, self.var_dir))
            self.idle_rss_mib = {"worker": resident_mib(self.environment.worker_pid()),
                                 "api": resident_mib(self.environment.api_pid())}
        return self.environment

    def large_fleet(self) -> dict[str, Any]:
        """Return the one-process fleet measurement, running it on first use."""
        if self.fleet_result is None:
            self.fleet_result = run_fleet_measurement(self.sizes.fleet_devices)
        return self.fleet_result


def run_fleet_measurement(devices: int) -> dict[str, Any]:
    """Run ``bench.simulator_fleet`` in a fresh process, so its RSS is the fleet's alone."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.simulator_fleet", "--devices", str(devices), "--json"],
        capture_output=True, text=True, timeout=FLEET_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench.simulator_fleet exited with code {done.returncode}: "
                           f"{done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


async def bench_transports(context: Context) -> dict[str, Any]:
    """Benchmark 1 against a one-device fleet of its own, serving every transport."""
    fleet = FleetProcess(1)
    try:
        endpoint = fleet.wait_ready()[0]
        rows = await measure_transports(endpoint, context.sizes.calls)
    finally:
        fleet.stop()
    return sections.transports(rows, context.sizes.calls)


async def bench_mcp(context: Context) -> dict[str, Any]:
    """Benchmark 2 against the stack's first device."""
    environment = await context.stack()
    endpoint = environment.fleet.endpoints[0]
    rows = await measure_mcp_read(environment.stack, endpoint, context.sizes.calls)
    return sections.mcp(rows, context.sizes.calls, environment.database)


async def bench_fleet(context: Context) -> dict[str, Any]:
    """Benchmark 3: the large fleet in a fresh process."""
    return sections.fleet(context.large_fleet())


async def bench_rollout(context: Context) -> dict[str, Any]:
    """Benchmark 4 over every device of the stack's fleet."""
    environment = await context.stack()
    record = await measure_rollout(environment, context.sizes.delay)
    record["worker_rss_after_mib"] = resident_mib(environment.worker_pid())
    return sections.rollout(record, environment.database)


async def bench_memory(context: Context) -> dict[str, Any]:
    """Benchmark 5 from the stack's idle sample and the large fleet's figures."""
    await context.stack()
    return sections.memory(context.idle_rss_mib, context.large_fleet())


# Run order: the stack's idle RSS is sampled when it starts, before mcp and rollout use it.
BENCHMARKS: dict[str, Callable[[Context], Awaitable[dict[str, Any]]]] = {
    "transports": bench_transports,
    "fleet": bench_fleet,
    "memory": bench_memory,
    "mcp": bench_mcp,
    "rollout": bench_rollout,
}
REPORT_ORDER = ["transports", "mcp", "fleet", "rollout", "memory"]


async def run(names: list[str], sizes: Sizes) -> dict[str, dict[str, Any]]:
    """Run the named benchmarks in ``BENCHMARKS`` order; a failure becomes an error section."""
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tikflow-bench-") as var_dir:
        async with AsyncExitStack() as cleanup:
            context = Context(sizes=sizes, needs_rollout_fleet="rollout" in names,
                              cleanup=cleanup, var_dir=Path(var_dir))
            selected = [name for name in BENCHMARKS if name in names]
            for name in selected:
                log.info("benchmark started", benchmark=name)
                try:
                    results[name] = await BENCHMARKS[name](context)
                except Exception as error:  # one failing benchmark must not lose the others
                    message = describe_error(error)
                    log.error("benchmark failed", benchmark=name, error=message)
                    results[name] = sections.failed(name, message)
                else:
                    log.info("benchmark finished", benchmark=name)
    return {name: results[name] for name in REPORT_ORDER if name in results}


def describe_error(error: BaseException) -> str:
    """Return ``Type: message`` of an error, or of each error inside an exception group."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe_error(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"small sizes for a smoke check ({QUICK.fleet_devices}-device fleet, "
                             f"{QUICK.rollout_devices}-device rollout, {QUICK.calls} calls per series)")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only this benchmark; repeatable; one of {', '.join(BENCHMARKS)}")
    parser.add_argument("--note", default=os.environ.get("TIKFLOW_BENCH_NOTE"),
                        help="one line about the machine or the run to record with the results, "
                             "such as other load on the cores (default: $TIKFLOW_BENCH_NOTE)")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for results.md and results.json (default: bench/, or "
                             "bench/out/ with --quick)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, write the results, and return 1 when any benchmark failed."""
    arguments = parse_arguments(argv)
    sizes = QUICK if arguments.quick else FULL
    names = arguments.only or list(BENCHMARKS)
    benchmarks = asyncio.run(run(names, sizes))
    machine = machine_info() | ({"note": arguments.note} if arguments.note else {})
    results = {"mode": "quick" if arguments.quick else "full", "machine": machine,
               "benchmarks": benchmarks}
    output = arguments.output or (BENCH_DIR / "out" if arguments.quick else BENCH_DIR)
    output.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = write_results(results, output)
    print(f"wrote {markdown_path} and {json_path}")
    return 1 if any("error" in section for section in benchmarks.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
