"""The ``tikflow`` command line: one typer app with a sub-command per area."""

from __future__ import annotations

import typer

from tikflow import simulate_cmd
from tikflow.commands import (
    auth,
    backup,
    config,
    core,
    devices,
    keys,
    plans,
    smoke,
    snapshots,
    tools,
    version_cmds,
)

app = typer.Typer(
    name="tikflow",
    help="Durable, auditable change management for MikroTik RouterOS.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
core.register(app)
simulate_cmd.register(app)
app.add_typer(config.app, name="config")
app.add_typer(devices.app, name="devices")
app.add_typer(keys.app, name="keys")
devices.app.command("diff")(snapshots.diff)
app.add_typer(snapshots.app, name="snapshots")
app.add_typer(plans.plans_app, name="plans")
app.add_typer(plans.incident_app, name="incident")
version_cmds.register(app)
auth.register(app)
tools.register(app)
backup.register(app)
smoke.register(app)


def main() -> None:
    """Entry point of the ``tikflow`` console script."""
    app()


if __name__ == "__main__":
    main()
