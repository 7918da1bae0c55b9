"""A simulator fleet in its own process that counts the replies each device sends.

The benchmarks need the simulator out of their own process, so its CPU time does not count
twice, and they need the number of device round trips behind a rollout. ``tikflow simulate``
offers neither count nor a fleet-wide latency switch, so this module runs the same ``Fleet``
with one extra: every device's ``Faults`` counts the replies it delays, which is one per login
and one per command on the binary API.

The parent drives the child with JSON lines on stdin and reads JSON lines from stdout:

=====================================  =================================================
``{"op": "latency", "seconds": 0.02}``  set the reply delay on every device
``{"op": "counts"}``                    reply ``{"counts": {"r1": 12, ...}, "commands": {...}}``
``{"op": "reset"}``                     zero every counter
=====================================  =================================================

Run ``python -m bench.fleet_process --devices 3`` to see the endpoint lines it prints first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from simulator.executor import Trap
from simulator.faults import Faults
from simulator.fleet import TRANSPORTS, Fleet
from simulator.runner import SAMPLES

EXPORT = SAMPLES / "lab-router.rsc"
REPLY_TIMEOUT = 30.0


class CountingFaults(Faults):
    """Faults that also count the replies they delay and the commands they see.

    Clearing the faults keeps the counts, so a control request that switches faults off
    does not lose the round trips counted so far.
    """

    def __init__(self) -> None:
        super().__init__()
        self.replies = 0
        self.commands: Counter[str] = Counter()

    def reply_delay(self) -> float:
        """Count one reply (a login or a command) and return its delay."""
        self.replies += 1
        return super().reply_delay()

    def clear(self) -> None:
        """Switch every fault off and keep the counters."""
        replies, commands = self.replies, self.commands
        super().clear()
        self.replies, self.commands = replies, commands

    def trap_for(self, command: str) -> Trap | None:
        """Count one run of ``command`` and return its injected trap, if any."""
        self.commands[command] += 1
        return super().trap_for(command)


def build_fleet(devices: int, transports: tuple[str, ...], export: Path) -> Fleet:
    """Create the fleet with a counting ``Faults`` on every device (before it starts)."""
    fleet = Fleet(devices, export=export, transports=transports)
    for device in fleet.devices:
        device.faults = CountingFaults()
    return fleet


def handle(fleet: Fleet, request: dict[str, Any]) -> dict[str, Any]:
    """Run one control request and return the reply line."""
    operation = request.get("op")
    if operation == "latency":
        for device in fleet.devices:
            device.faults.set_latency(float(request["seconds"]))
        return {"ok": True}
    if operation == "counts":
        commands: Counter[str] = Counter()
        for device in fleet.devices:
            commands.update(device.faults.commands)
        return {"counts": {device.name: device.faults.replies for device in fleet.devices},
                "commands": dict(commands)}
    if operation == "reset":
        for device in fleet.devices:
            device.faults.replies = 0
            device.faults.commands.clear()
        return {"ok": True}
    return {"error": f"unknown op {operation!r}; use latency, counts or reset"}


async def serve(devices: int, transports: tuple[str, ...], export: Path) -> None:
    """Start the fleet, print its endpoints, then reply to control lines until stdin closes."""
    fleet = build_fleet(devices, transports, export)
    await fleet.start()
    try:
        for entry in fleet.endpoints():
            _write(entry)
        _write({"ready": True})
        reader = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            try:
                _write(handle(fleet, json.loads(line)))
            except (ValueError, KeyError, TypeError) as error:
                _write({"error": f"invalid control line {line[:80]!r}: {error}"})
    finally:
        await fleet.stop()


def _write(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


class FleetProcess:
    """Parent-side handle of a counting fleet child process.

    Attributes:
        endpoints: One entry per device as ``Fleet.endpoints`` returns it.
    """

    def __init__(self, devices: int, *, transports: tuple[str, ...] = TRANSPORTS,
                 export: Path = EXPORT) -> None:
        self.devices = devices
        self.endpoints: list[dict[str, Any]] = []
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.fleet_process", "--devices", str(devices),
             "--transports", ",".join(transports), "--export", str(export)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """Process id of the child."""
        return self._process.pid

    def wait_ready(self) -> list[dict[str, Any]]:
        """Read the endpoint lines up to the ready line and return the endpoints.

        Raises:
            RuntimeError: The child exited before it was ready.
        """
        while True:
            record = self._read_line()
            if record.get("ready"):
                return self.endpoints
            self.endpoints.append(record)

    def endpoint(self, name: str) -> dict[str, Any]:
        """Return the endpoint of the device called ``name``."""
        return next(entry for entry in self.endpoints if entry["name"] == name)

    def set_latency(self, seconds: float) -> None:
        """Delay every reply of every device by ``seconds``."""
        self._request({"op": "latency", "seconds": seconds})

    def counts(self) -> dict[str, int]:
        """Return the replies each device sent since the last reset."""
        return self._request({"op": "counts"})["counts"]

    def command_counts(self) -> dict[str, int]:
        """Return how often each command ran on all devices together since the last reset."""
        return self._request({"op": "counts"})["commands"]

    def reset_counts(self) -> None:
        """Zero every device's reply counter."""
        self._request({"op": "reset"})

    def stop(self) -> None:
        """Close stdin so the child stops its fleet, and wait for it."""
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(timeout=REPLY_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        reply = self._read_line()
        if "error" in reply:
            raise RuntimeError(f"fleet process rejected {request}: {reply['error']}")
        return reply

    def _read_line(self) -> dict[str, Any]:
        # NOTE: readline blocks without a timeout; the child replies at once unless it died,
        # and then readline returns "" and this raises.
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"fleet process exited with code {self._process.wait()}")
        return json.loads(line)


def main() -> None:
    """Parse the command line and serve the fleet."""
    parser = argparse.ArgumentParser(description="Serve a simulator fleet that counts replies.")
    parser.add_argument("--devices", type=int, default=1, help="number of devices, named r1..rN")
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="comma-separated transports each device serves")
    parser.add_argument("--export", type=Path, default=EXPORT, help=".rsc export every device loads")
    arguments = parser.parse_args()
    raise_file_limit()
    asyncio.run(serve(arguments.devices, tuple(arguments.transports.split(",")), arguments.export))


def raise_file_limit() -> None:
    """Lift the open-file soft limit to the hard limit; each device listens on several ports."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


if __name__ == "__main__":
    main()
