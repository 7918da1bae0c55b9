"""Process commands: ``api``, ``worker`` and ``migrate``."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import typer
from pydantic import ValidationError

from tikflow.logging import configure_logging
from tikflow.settings import Settings, get_settings

migrate_app = typer.Typer(help="Apply or inspect database migrations.", no_args_is_help=True)


def load_settings() -> Settings:
    """Read settings, or exit with the wrong keys named and no input values echoed."""
    try:
        return get_settings()
    except (ValidationError, ValueError) as err:
        typer.echo("tikflow: invalid configuration:", err=True)
        if isinstance(err, ValidationError):
            for error in err.errors(include_input=False, include_url=False):
                where = ".".join(str(p) for p in error["loc"]) or "(settings)"
                typer.echo(f"  {where}: {error['msg']}", err=True)
        else:
            typer.echo(f"  {err}", err=True)
        raise typer.Exit(2) from None


def api() -> None:
    """Serve the MCP endpoint, admin API, console, health and metrics (uvicorn)."""
    import uvicorn

    from api.app import create_app

    settings = load_settings()
    configure_logging(settings.logging.level, settings.logging.format)
    uvicorn.run(create_app(settings), host=settings.api.host, port=settings.api.port,
                log_level=settings.logging.level.lower(), access_log=False, lifespan="on")


def worker() -> None:
    """Run a Temporal worker for tikflow's workflows and activities."""
    from workers.main import run_worker

    settings = load_settings()
    configure_logging(settings.logging.level, settings.logging.format)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(main())


@migrate_app.command("upgrade")
def migrate_upgrade(
    revision: str = typer.Argument("head", help="Target revision"),
    backup_file: Path | None = typer.Option(
        None, "--backup-file", help="Archive from tikflow backup; required for destructive revisions"),
    i_have_a_backup: bool = typer.Option(
        False, "--i-have-a-backup", help="Run destructive revisions without a checked backup"),
    backup_max_age_hours: float = typer.Option(
        24.0, "--backup-max-age-hours", min=0, help="Hours a --backup-file stays fresh enough"),
) -> None:
    """Upgrade the database schema to REVISION (default: head)."""
    from storage.migrate import upgrade
    from tikflow.commands.backup import require_backup_for_destructive

    url = load_settings().database.url
    require_backup_for_destructive(url, revision, backup_file=backup_file, acknowledged=i_have_a_backup,
                                   max_age_hours=backup_max_age_hours)
    upgrade(url, revision)
    typer.echo(f"database upgraded to {revision}")


@migrate_app.command("downgrade")
def migrate_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base")) -> None:
    """Downgrade the database schema to REVISION."""
    from storage.migrate import downgrade

    downgrade(load_settings().database.url, revision)
    typer.echo(f"database downgraded to {revision}")


@migrate_app.command("current")
def migrate_current() -> None:
    """Print the database's current revision."""
    from alembic import command

    from storage.migrate import alembic_config

    command.current(alembic_config(load_settings().database.url))


@migrate_app.command("history")
def migrate_history() -> None:
    """List the migration revisions shipped with this version."""
    from alembic import command

    from storage.migrate import alembic_config

    command.history(alembic_config(load_settings().database.url))


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    app.command("worker")(worker)
    app.add_typer(migrate_app, name="migrate")
    from tikflow.commands.dev import dev

    app.command("dev")(dev)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run through the tikflow command")
