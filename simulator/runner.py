"""Run a fleet and its control endpoint until interrupted, printing how to reach each device."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.control import ControlServer
from simulator.fleet import TRANSPORTS, Fleet

SAMPLES = Path(__file__).parent / "samples"


class SimulatorStartError(RuntimeError):
    """The fleet could not load its export or bind its ports."""


def format_endpoint(entry: dict[str, Any]) -> str:
    """Return one human-readable line for a device endpoint."""
    ports = " ".join(f"{transport}={entry[transport]}" for transport in TRANSPORTS if transport in entry)
    return f"{entry['name']} RouterOS {entry['version']} user={entry['username']} password={entry['password']} {ports}"


async def serve(
    *,
    devices: int,
    version: str | None,
    export: Path | None,
    base_port: int | None,
    control_port: int | None,
    as_json: bool,
    output: Callable[[str], None] = print,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Start the fleet, print its endpoints, and run until ``stop`` is set or a signal arrives."""
    try:
        fleet = Fleet(devices, version=version, export=export, base_port=base_port)
    except ValueError as error:
        raise SimulatorStartError(f"cannot load export {export}: {error}") from error
    stop = stop or asyncio.Event()
    control = ControlServer(fleet, port=control_port or 0)
    try:
        await fleet.start()
        await control.start()
    except OSError as error:
        await fleet.stop()
        raise SimulatorStartError(
            f"cannot listen on a simulator port ({error.strerror}); pick another --base-port or --control-port"
        ) from error
    try:
        _print_endpoints(fleet, control.port, as_json, output)
        _install_signal_handlers(stop)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await control.stop()
        await fleet.stop()


def _print_endpoints(fleet: Fleet, control_port: int, as_json: bool, output: Callable[[str], None]) -> None:
    control = f"{fleet.host}:{control_port}"
    if as_json:
        for entry in fleet.endpoints():
            output(json.dumps({**entry, "control": control}))
        return
    output(f"control endpoint: http://{control}/devices")
    output(f"TLS certificate SHA-256: {fleet.fingerprint}")
    output(f"service account: tikflow password={fleet.service_password}")
    for entry in fleet.endpoints():
        output(format_endpoint(entry))


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
