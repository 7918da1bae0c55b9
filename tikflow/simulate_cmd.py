"""``tikflow simulate``: serve simulated RouterOS devices for tests and demos."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

VERSIONS = ("7.19", "6.49")
SAMPLES = Path(__file__).resolve().parent.parent / "simulator" / "samples"


def default_export(version: str | None) -> Path:
    """Return the product's sample configuration for the requested RouterOS generation."""
    return SAMPLES / ("lab-router-v6.rsc" if version and version.startswith("6.") else "lab-router.rsc")


def simulate(
    devices: Annotated[int, typer.Option("--devices", min=1, help="Number of devices, named r1..rN.")] = 1,
    from_export: Annotated[
        Path | None,
        typer.Option("--from-export", exists=True, dir_okay=False,
                     help="Load every device from this .rsc export (default: the product's sample)."),
    ] = None,
    factory: Annotated[
        bool, typer.Option("--factory", help="Start from factory defaults instead of an export.")
    ] = False,
    version: Annotated[
        str | None, typer.Option("--version", help="RouterOS version to report: 7.19 or 6.49 (default: export's, else 7.19).")
    ] = None,
    base_port: Annotated[
        int | None,
        typer.Option("--base-port", min=1, max=65535, help="First TCP port; each device takes 5 (api, api-ssl, rest, rest-ssl, ssh)."),
    ] = None,
    control_port: Annotated[
        int | None, typer.Option("--control-port", min=0, max=65535, help="Port of the loopback control endpoint (default: any free port).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per device and line.")] = False,
) -> None:
    """Serve simulated RouterOS devices on 127.0.0.1 until interrupted (Ctrl-C)."""
    from simulator.runner import SimulatorStartError, serve

    if version is not None and version not in VERSIONS:
        raise typer.BadParameter(f"unsupported version {version!r}; use one of {', '.join(VERSIONS)}", param_hint="--version")
    if base_port is not None and base_port + devices * 5 > 65536:
        raise typer.BadParameter(f"{devices} devices need {devices * 5} ports from {base_port}; pick a lower --base-port",
                                 param_hint="--base-port")
    if factory and from_export is not None:
        raise typer.BadParameter("--factory and --from-export exclude each other; pass one",
                                 param_hint="--factory")
    export = None if factory else (from_export or default_export(version))
    try:
        asyncio.run(
            serve(
                devices=devices, version=version, export=export, base_port=base_port,
                control_port=control_port, as_json=as_json, output=lambda line: print(line, flush=True),
            )
        )
    except SimulatorStartError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""
    app.command("simulate")(simulate)
