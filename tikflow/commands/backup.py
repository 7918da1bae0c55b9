"""``tikflow backup`` and ``tikflow restore``: one archive with the database and the settings.

Exit codes: 0 success, 1 the backup or restore failed, 2 invalid input (a target that is not
empty without ``--force``, a damaged archive, an unknown revision).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from storage.backup import BackupError, BackupInvalid, BackupManifest, create_backup, restore_backup
from tikflow.commands.core import load_settings
from tikflow.configinfo.masking import mask_url

EXIT_FAILED, EXIT_INVALID = 1, 2
MASTER_KEY_NOTICE = (
    "The master key is NOT in this backup. Stored device credentials stay encrypted and can "
    "only be read with the key that sealed them (key ids: {key_ids}); keep that key in your "
    "secret manager."
)


def masked_settings() -> dict[str, Any]:
    """Return the effective settings, each with its source, every secret masked."""
    from tikflow.configinfo.sources import ConfigInvalidError, effective_settings

    try:
        rows = effective_settings()
    except ConfigInvalidError as exc:
        typer.echo("tikflow: invalid configuration: " + "; ".join(exc.problems), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    return {row.key: {k: v for k, v in asdict(row).items() if k != "key"} for row in rows}


def _key_notice(manifest: BackupManifest) -> str:
    return MASTER_KEY_NOTICE.format(key_ids=", ".join(manifest.credential_key_ids) or "none stored")


def _fail(exc: BackupError) -> NoReturn:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(EXIT_INVALID if isinstance(exc, BackupInvalid) else EXIT_FAILED)


def backup(
    output: Annotated[Path, typer.Option("--output", "-o", help="Archive file to write (.tar.gz)")],
) -> None:
    """Write the database and the effective settings (secrets masked) into one archive."""
    settings = load_settings()
    try:
        manifest = asyncio.run(create_backup(settings.database.url, output, config=masked_settings()))
    except BackupError as exc:
        _fail(exc)
    except OSError as exc:
        typer.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    rows = sum(count for name, count in manifest.row_counts.items() if name != "alembic_version")
    typer.echo(f"backup written to {output}")
    typer.echo(f"  database   {manifest.backend} {manifest.source_database}")
    typer.echo(f"  revision   {manifest.alembic_revision}  (tikflow {manifest.tikflow_version})")
    typer.echo(f"  rows       {rows} in {len(manifest.row_counts)} tables")
    typer.echo(_key_notice(manifest))


def restore(
    input_: Annotated[Path, typer.Option("--input", "-i", help="Archive written by tikflow backup")],
    database_url: Annotated[str | None, typer.Option(
        "--database-url", help="Database to restore into; default: the configured database.url")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the contents of a target database that is not empty")] = False,
) -> None:
    """Restore an archive into a new, empty database after checking its checksums and revision."""
    url = database_url or load_settings().database.url
    try:
        result = asyncio.run(restore_backup(input_, url, force=force))
    except BackupError as exc:
        _fail(exc)
    manifest = result.manifest
    rows = sum(count for name, count in result.row_counts.items() if name != "alembic_version")
    if result.replaced_rows:
        typer.echo(f"warning: replaced {result.replaced_rows} rows that were in the target", err=True)
    typer.echo(f"restored {input_} into {mask_url(url)}")
    typer.echo(f"  taken      {manifest.created_at} by tikflow {manifest.tikflow_version}")
    typer.echo(f"  revision   {manifest.alembic_revision}; run `tikflow migrate upgrade` if this "
               "release is newer")
    typer.echo(f"  rows       {rows} in {len(result.row_counts)} tables")
    typer.echo(_key_notice(manifest))


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)


def require_backup_for_destructive(url: str, target: str, *, backup_file: Path | None,
                                   acknowledged: bool, max_age_hours: float) -> None:
    """Exit with status 2 when a destructive revision is pending without a fresh backup.

    ``acknowledged`` (``--i-have-a-backup``) lets the upgrade go ahead after a warning, for
    backups taken outside tikflow, such as storage snapshots or point-in-time recovery.
    """
    from datetime import timedelta

    from storage.backup import database_revision
    from storage.migration_guard import BackupRequired, check_backup, pending_migrations

    try:
        current = asyncio.run(database_revision(url))
    except BackupError as exc:
        _fail(exc)
    destructive = [m for m in pending_migrations(current, target) if m.destructive]
    if not destructive:
        return
    names = ", ".join(f"{m.revision} ({m.message})" if m.message else m.revision for m in destructive)
    if backup_file is not None:
        try:
            manifest = check_backup(backup_file, url=url, revision=current,
                                    max_age=timedelta(hours=max_age_hours))
        except (BackupRequired, BackupError) as exc:
            typer.echo(f"error: destructive migration {names} needs a fresh backup: {exc}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        typer.echo(f"destructive migration {names}: backup {backup_file} from "
                   f"{manifest.created_at} at revision {manifest.alembic_revision} accepted")
        return
    if acknowledged:
        typer.secho(f"WARNING: applying destructive migration {names} without a backup that "
                    "tikflow checked (--i-have-a-backup). Data it drops can only come back from "
                    "your own backup.", err=True, fg=typer.colors.RED, bold=True)
        return
    typer.echo(f"error: migration {names} is destructive; take a backup first "
               f"(tikflow backup --output FILE) and pass --backup-file FILE, made within "
               f"{max_age_hours:g} hours at revision {current}, or pass --i-have-a-backup",
               err=True)
    raise typer.Exit(EXIT_INVALID)
