"""``tikflow snapshots``: list, show and diff device snapshots, and apply the snapshot schedules.

``list``, ``show`` and ``diff`` read the admin API at ``TIKFLOW_API_URL`` with ``TIKFLOW_TOKEN``,
like ``tikflow devices``; ``tikflow devices diff`` is the same command as ``snapshots diff``.
``schedule apply`` talks to Temporal with the deployment's own settings.

Exit codes: 0 success, 1 failure (API or Temporal unreachable), 2 bad input, 3 not found.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated
from urllib.parse import quote

import typer
from rich.table import Table

from tikflow.commands.devices import EXIT_FAILED, POLL_SECONDS, out, run_api

app = typer.Typer(name="snapshots", help="Device configuration snapshots and their schedules.",
                  no_args_is_help=True)
schedule_app = typer.Typer(help="Temporal Schedules that take snapshots per environment.",
                           no_args_is_help=True)
app.add_typer(schedule_app, name="schedule")

DeviceArgument = Annotated[str, typer.Argument(help="Device name or id")]
ReasonOption = Annotated[str | None, typer.Option(
    "--reason", help="Only snapshots of this reason, e.g. scheduled or pre-apply")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]


def _device_path(device: str) -> str:
    return f"/devices/{quote(device, safe='')}/snapshots"


@app.command("list")
def list_snapshots(device: DeviceArgument, reason: ReasonOption = None,
                   limit: Annotated[int, typer.Option(min=1, max=500, help="Newest N snapshots")] = 50,
                   as_json: JsonOption = False) -> None:
    """List a device's snapshots, newest first."""
    body = run_api("GET", _device_path(device), params={"reason": reason, "limit": limit})
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    table = Table("id", "taken at", "reason", "plan", "kind", "lines", "sha256")
    for item in body["items"]:
        table.add_row(str(item["id"]), item["taken_at"], item["reason"], item["plan_id"] or "",
                      item["kind"], str(item["lines"]), item["sha256"][:12])
    out.print(table)


@app.command("show")
def show_snapshot(device: DeviceArgument,
                  selector: Annotated[str, typer.Argument(help="Snapshot id, latest or latest~N")] = "latest",
                  reason: ReasonOption = None) -> None:
    """Print one snapshot: its export, or its saved tables as JSON."""
    body = run_api("GET", f"{_device_path(device)}/{quote(selector, safe='~')}", params={"reason": reason})
    typer.echo(body["export_text"] if body["export_text"] else json.dumps(body["tables"], indent=1))


def diff(
    device: DeviceArgument,
    from_: Annotated[str, typer.Option("--from", help="Older snapshot: id, latest or latest~N")] = "latest~1",
    to: Annotated[str, typer.Option("--to", help="Newer snapshot: id, latest or latest~N")] = "latest",
    reason: ReasonOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the unified diff between two snapshots of a device."""
    body = run_api("GET", f"{_device_path(device)}/diff", params={"from": from_, "to": to, "reason": reason})
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    if body["identical"]:
        typer.echo(f"snapshots {body['from']['id']} and {body['to']['id']} of {body['device']['name']} "
                   "are identical")
        return
    typer.echo(body["diff"], nl=False)
    if body["truncated"]:
        typer.echo("... diff cut; compare the full exports with `tikflow snapshots show`", err=True)


app.command("diff")(diff)


@app.command("take")
def take_snapshot(
    device: DeviceArgument,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the snapshot to be stored")] = True,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait with --wait")] = 120.0,
) -> None:
    """Export a device now and store the result as a ``manual`` snapshot."""
    before = run_api("GET", _device_path(device), params={"reason": "manual", "limit": 1})["items"]
    started = run_api("POST", _device_path(device))
    typer.echo(f"started {started['workflow_id']}")
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        newest = run_api("GET", _device_path(device), params={"reason": "manual", "limit": 1})["items"]
        if newest and newest != before:
            typer.echo(f"snapshot {newest[0]['id']} stored, {newest[0]['lines']} lines")
            return
        time.sleep(POLL_SECONDS)
    typer.echo(f"error: no snapshot after {timeout:g} s; check workflow {started['workflow_id']} in "
               "the Temporal UI", err=True)
    raise typer.Exit(EXIT_FAILED)


@schedule_app.command("apply")
def apply_schedules(
    environments: Annotated[list[str] | None, typer.Option(
        "--env", help="Only this environment (repeatable); default lab, staging and prod")] = None,
) -> None:
    """Create or update the snapshot schedules from the snapshots settings."""
    from tikflow.commands.core import load_settings
    from tikflow.snapshot_schedules import ENVIRONMENTS, apply_snapshot_schedules
    from tikflow.temporal import connect_temporal, ensure_search_attributes

    chosen = tuple(environments or ENVIRONMENTS)
    unknown = sorted(set(chosen) - set(ENVIRONMENTS))
    if unknown:
        typer.echo(f"error: unknown environment {', '.join(unknown)}; use lab, staging or prod", err=True)
        raise typer.Exit(2)
    settings = load_settings()

    async def apply():
        client = await connect_temporal(settings)
        # Runs carry TikflowEnvironment, which the namespace must know before a schedule uses it.
        await ensure_search_attributes(client)
        return await apply_snapshot_schedules(client, settings, chosen)

    try:
        changes = asyncio.run(apply())
    except RuntimeError as exc:
        # temporalio raises RuntimeError when the frontend cannot be reached.
        typer.echo(f"error: cannot reach Temporal at {settings.temporal.address}: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    for change in changes:
        state = "paused" if change.paused else f"every {change.interval_seconds} s"
        typer.echo(f"{change.schedule_id}: {change.action}, {state}, keep {change.retention} per device")
