"""Destructive migrations need a fresh backup first.

A revision file marks itself destructive with a module-level ``destructive = True`` (it drops
or rewrites data that the previous release still needs, so only a backup can undo it).
``tikflow migrate upgrade`` then runs only with a backup archive of this database, at its
current revision, made within the last hours, or with an explicit acknowledgement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError

from storage import migrate
from storage.backup import BackupManifest, backend_of, read_manifest


class BackupRequired(Exception):
    """A destructive migration is pending and no acceptable backup was named."""


@dataclass(frozen=True)
class PendingMigration:
    """A revision that ``upgrade`` would apply, and whether it is marked destructive."""

    revision: str
    message: str
    destructive: bool


def script_directory(migrations_dir: Path | None = None) -> ScriptDirectory:
    """Return the migration scripts in ``migrations_dir``, default those shipped with tikflow."""
    migrations_dir = migrations_dir or migrate.MIGRATIONS_DIR
    config = migrate.alembic_config("sqlite://")
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("version_locations", str(migrations_dir / "versions"))
    return ScriptDirectory.from_config(config)


def pending_migrations(current: str | None, target: str,
                       migrations_dir: Path | None = None) -> list[PendingMigration]:
    """Return the revisions between ``current`` and ``target``, oldest first.

    A target that alembic cannot resolve here (``+1``, a typo) counts as everything up to
    head, so the check errs towards asking for a backup. Alembic itself reports a typo.
    """
    scripts = script_directory(migrations_dir)
    try:
        revisions = list(scripts.iterate_revisions(target, current or "base"))
    except CommandError:
        try:
            revisions = list(scripts.iterate_revisions("heads", current or "base"))
        except CommandError:
            return []
    return [_pending(script) for script in reversed(revisions)]


def _pending(script: Script) -> PendingMigration:
    return PendingMigration(revision=script.revision, message=(script.doc or "").strip(),
                            destructive=getattr(script.module, "destructive", False) is True)


def check_backup(backup_file: Path, *, url: str, revision: str | None,
                 max_age: timedelta, now: datetime | None = None) -> BackupManifest:
    """Accept ``backup_file`` only when it covers this database as it is now.

    Raises:
        BackupRequired: the archive is damaged, of another backend, at another revision, or
            older than ``max_age``.
        storage.backup.BackupError: the archive cannot be read (it is damaged).
    """
    manifest = read_manifest(backup_file)
    if manifest.backend != backend_of(url):
        raise BackupRequired(f"{backup_file} is a {manifest.backend} backup, but the database is "
                             f"{backend_of(url)}; back up this database with tikflow backup")
    if manifest.alembic_revision != revision:
        raise BackupRequired(f"{backup_file} was taken at revision {manifest.alembic_revision}, "
                             f"but the database is at {revision}; take a new backup with "
                             "tikflow backup")
    age = (now or datetime.now(UTC)) - manifest.created
    if age > max_age:
        hours = age.total_seconds() / 3600
        raise BackupRequired(f"{backup_file} is {hours:.1f} hours old, more than the "
                             f"{max_age.total_seconds() / 3600:g} allowed; take a new backup "
                             "with tikflow backup")
    return manifest
