"""``tikflow dev``: the whole stack on a laptop, stopped cleanly with Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel

from tikflow.devstack import (
    Supervisor,
    ensure_secret_file,
    port_in_use,
    read_simulator_endpoints,
    temporal_dev_server_args,
    venv_binary,
    wait_for_port,
)

console = Console(stderr=True)
SAMPLE_EXPORT = Path(__file__).resolve().parents[2] / "simulator" / "samples" / "lab-router.rsc"


def simulator_endpoint(record: dict, transport: str) -> tuple[str, int] | None:
    """Return (host, port) of one transport from a ``tikflow simulate --json`` record."""
    value = record.get("endpoints", record).get(transport)
    if not value:
        return None
    host, _, port = str(value).rpartition(":")
    return host.strip("[]"), int(port)


def dev(
    devices: int = typer.Option(3, min=1, max=50, help="Simulated routers to start and register"),
    api_port: int = typer.Option(8080, help="Port of the api (MCP endpoint, admin API, console)"),
    temporal_port: int = typer.Option(7233, help="Port of the Temporal dev server frontend"),
    ui_port: int = typer.Option(8233, help="Port of the Temporal UI"),
    simulator_port: int = typer.Option(18728, help="First port of the simulated routers"),
    var_dir: Path = typer.Option(Path("var"), help="Folder for the SQLite file, token and logs"),
) -> None:
    """Start Temporal, the simulator, the worker and the api; register the simulated routers."""
    var_dir = var_dir.resolve()
    logs = var_dir / "log"
    for port, what in ((api_port, "api"), (temporal_port, "Temporal"), (ui_port, "Temporal UI")):
        if port_in_use(port):
            console.print(f"[red]port {port} for the {what} is already in use; stop what holds it "
                          f"or pass another port (see tikflow dev --help)[/red]")
            raise typer.Exit(1)

    token = ensure_secret_file(var_dir / "dev-token")
    env = dict(os.environ)
    env.update({
        "TIKFLOW_ENV": "lab",
        "TIKFLOW_VAR_DIR": str(var_dir),
        "TIKFLOW_DEV_TOKEN": token,
        "TIKFLOW_DATABASE__URL": env.get("TIKFLOW_DATABASE__URL", f"sqlite+aiosqlite:///{var_dir}/tikflow.db"),
        "TIKFLOW_TEMPORAL__ADDRESS": f"127.0.0.1:{temporal_port}",
        "TIKFLOW_TEMPORAL__UI_URL": f"http://127.0.0.1:{ui_port}",
        "TIKFLOW_API__PORT": str(api_port),
    })
    os.environ.update(env)

    from storage.migrate import upgrade
    from tikflow.settings import Settings

    settings = Settings()
    upgrade(settings.database.url)

    supervisor = Supervisor()
    tikflow = venv_binary("tikflow")
    try:
        console.print("starting the Temporal dev server ...")
        temporal = supervisor.start(
            "temporal", temporal_dev_server_args(port=temporal_port, ui_port=ui_port,
                                                 db_file=var_dir / "temporal.db"),
            env=env, log_file=logs / "temporal.log")
        wait_for_port(temporal_port, timeout=60, process=temporal)

        console.print(f"starting {devices} simulated routers ...")
        simulator = supervisor.start(
            "simulator", [tikflow, "simulate", "--devices", str(devices), "--json",
                          "--base-port", str(simulator_port), "--from-export", str(SAMPLE_EXPORT)],
            env=env, stdout=subprocess.PIPE)
        endpoints = read_simulator_endpoints(simulator, devices, timeout=60)
        names = asyncio.run(_register(settings, endpoints))

        worker = supervisor.start("worker", [tikflow, "worker"], env=env, log_file=logs / "worker.log")
        api = supervisor.start("api", [tikflow, "api"], env=env, log_file=logs / "api.log")
        wait_for_port(api_port, timeout=60, process=api)
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with code {worker.returncode}; see {logs / 'worker.log'}")
        _apply_snapshot_schedule(settings)
        _print_banner(api_port, ui_port, token, var_dir, names)
        _wait(supervisor)
    except (RuntimeError, TimeoutError, FileNotFoundError) as err:
        console.print(f"[red]tikflow dev failed: {err}[/red] (logs in {logs})")
        raise typer.Exit(1) from None
    finally:
        console.print("stopping ...")
        supervisor.stop()


async def _register(settings, endpoints: list[dict]) -> list[str]:
    """Register each simulated router, or refresh its address and credential on a re-run."""
    from sqlalchemy import select

    from inventory.devices import Inventory, enrol_device, load_key_ring
    from storage.db import Database
    from storage.models import Credential, Device

    db = Database(settings.database.url)
    inventory = Inventory(db, load_key_ring(settings))
    names = []
    try:
        for record in endpoints:
            host, port = simulator_endpoint(record, "api")
            async with db.session() as session:
                existing = await session.scalar(select(Device).where(Device.name == record["name"]))
                if existing is not None:
                    existing.address, existing.port, existing.transport = host, port, "api"
                    existing.status = "active"
                    for credential in (await session.scalars(
                            select(Credential).where(Credential.device_id == existing.id))).all():
                        credential.active = False
            if existing is not None:
                await inventory.add_credential(existing.id, record.get("service_username", record["username"]),
                                               record.get("service_password", record["password"]),
                                               generation=int(time.time()))
            else:
                await enrol_device(inventory, settings, name=record["name"], address=host, port=port,
                                   transport="api", environment="lab", username=record.get("service_username", record["username"]),
                                   password=record.get("service_password", record["password"]), tags=["simulated"])
            names.append(record["name"])
    finally:
        await db.dispose()
    return names


def _apply_snapshot_schedule(settings) -> None:
    """Take lab snapshots on the configured schedule, as a deployment's set-up step would."""
    from tikflow.snapshot_schedules import apply_snapshot_schedules
    from tikflow.temporal import connect_temporal, ensure_search_attributes

    async def apply() -> None:
        client = await connect_temporal(settings)
        await ensure_search_attributes(client)
        await apply_snapshot_schedules(client, settings, ("lab",))

    try:
        asyncio.run(apply())
    except RuntimeError as err:
        console.print(f"[yellow]snapshot schedule not applied: {err}[/yellow]")


def _print_banner(api_port: int, ui_port: int, token: str, var_dir: Path, names: list[str]) -> None:
    text = (
        f"MCP endpoint   http://127.0.0.1:{api_port}/mcp\n"
        f"Bearer token   {token}\n"
        f"               (also in {var_dir / 'dev-token'}, mode 0600)\n"
        f"Console        http://127.0.0.1:{api_port}/console (sign in with the token)\n"
        f"Temporal UI    http://127.0.0.1:{ui_port}\n"
        f"Health         http://127.0.0.1:{api_port}/readyz\n"
        f"Routers        {', '.join(names)} (simulated, environment lab)\n\n"
        "Press Ctrl-C to stop everything."
    )
    Console().print(Panel(text, title="tikflow dev is running"))


def _wait(supervisor: Supervisor) -> None:
    stopping = False

    def request_stop(_signum, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stopping:
        failed = supervisor.failed()
        if failed:
            raise RuntimeError("; ".join(failed))
        time.sleep(0.5)
