"""``tikflow migrate upgrade`` runs a destructive revision only after a fresh, matching backup."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storage import migrate
from storage.backup import create_backup, database_revision
from storage.migration_guard import BackupRequired, check_backup, pending_migrations
from tikflow.cli import app
from tikflow.settings import get_settings

runner = CliRunner()

ADDITIVE = '''"""add a scratch table

Revision ID: 0098
"""
import sqlalchemy as sa
from alembic import op

revision = "0098"
down_revision = "{parent}"


def upgrade() -> None:
    op.create_table("scratch_notes", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("scratch_notes")
'''

DESTRUCTIVE = '''"""drop the scratch table and its rows

Revision ID: 0099
"""
import sqlalchemy as sa
from alembic import op

revision = "0099"
down_revision = "0098"
destructive = True


def upgrade() -> None:
    op.drop_table("scratch_notes")


def downgrade() -> None:
    op.create_table("scratch_notes", sa.Column("id", sa.Integer(), primary_key=True))
'''


@pytest.fixture
def scripts(tmp_path, monkeypatch) -> Iterator[Path]:
    """A copy of the shipped migrations plus an additive and a destructive revision."""
    shipped_head = migrate.current_heads().pop()
    folder = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "0098_add_scratch.py").write_text(ADDITIVE.format(parent=shipped_head))
    (folder / "versions" / "0099_drop_scratch.py").write_text(DESTRUCTIVE)
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", folder)
    yield folder


@pytest.fixture
def database(tmp_path, monkeypatch) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path}/tikflow.db"
    monkeypatch.setenv("TIKFLOW_ENV", "lab")
    monkeypatch.setenv("TIKFLOW_DATABASE__URL", url)
    monkeypatch.setenv("TIKFLOW_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("TIKFLOW_CONFIG", raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def backup(url: str, path: Path) -> Path:
    asyncio.run(create_backup(url, path, config={}))
    return path


def revision_of(url: str) -> str | None:
    return asyncio.run(database_revision(url))


def test_pending_migrations_flags_destructive_revision(scripts):
    """Only the revision with ``destructive = True`` is flagged, oldest revision first."""
    head = [m for m in pending_migrations(None, "head") if m.revision in ("0098", "0099")]

    assert [(m.revision, m.destructive) for m in head] == [("0098", False), ("0099", True)]
    assert head[1].message.startswith("drop the scratch table")
    assert pending_migrations("0099", "head") == []


def test_migrate_rejects_destructive_without_backup(scripts, database):
    """Without a backup the upgrade stops before the destructive revision and names the fix."""
    migrate.upgrade(database, "0098")

    result = runner.invoke(app, ["migrate", "upgrade"])

    assert result.exit_code == 2
    assert "0099 (drop the scratch table and its rows) is destructive" in result.output
    assert "--backup-file" in result.output
    assert revision_of(database) == "0098"


def test_migrate_runs_additive_without_backup(scripts, database):
    """An upgrade that crosses no destructive revision needs no backup."""
    result = runner.invoke(app, ["migrate", "upgrade", "0098"])

    assert result.exit_code == 0, result.output
    assert revision_of(database) == "0098"


def test_migrate_accepts_fresh_matching_backup(scripts, database, tmp_path):
    """A backup at another revision is rejected; one at the current revision lets it run."""
    migrate.upgrade(database, "0098")
    migrate.downgrade(database, "-1")
    old = backup(database, tmp_path / "old.tar.gz")
    migrate.upgrade(database, "0098")

    rejected = runner.invoke(app, ["migrate", "upgrade", "--backup-file", str(old)])
    assert rejected.exit_code == 2
    assert "but the database is at 0098" in rejected.output
    assert revision_of(database) == "0098"

    fresh = backup(database, tmp_path / "fresh.tar.gz")
    accepted = runner.invoke(app, ["migrate", "upgrade", "--backup-file", str(fresh)])
    assert accepted.exit_code == 0, accepted.output
    assert "accepted" in accepted.output
    assert revision_of(database) == "0099"


def test_migrate_rejects_stale_or_damaged_backup(scripts, database, tmp_path):
    """A backup older than the allowed age, or a damaged file, is not a backup."""
    migrate.upgrade(database, "0098")
    archive = backup(database, tmp_path / "b.tar.gz")

    stale = runner.invoke(app, ["migrate", "upgrade", "--backup-file", str(archive),
                                "--backup-max-age-hours", "0"])
    assert stale.exit_code == 2
    assert "hours old" in stale.output

    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(archive.read_bytes()[:100])
    broken = runner.invoke(app, ["migrate", "upgrade", "--backup-file", str(damaged)])
    assert broken.exit_code == 2
    assert "damaged" in broken.output
    assert revision_of(database) == "0098"


def test_migrate_proceeds_with_acknowledgement(scripts, database):
    """--i-have-a-backup runs the destructive revision after a warning."""
    migrate.upgrade(database, "0098")

    result = runner.invoke(app, ["migrate", "upgrade", "--i-have-a-backup"])

    assert result.exit_code == 0, result.output
    assert "WARNING: applying destructive migration 0099" in result.output
    assert revision_of(database) == "0099"


def test_check_backup_measures_age_from_manifest(scripts, database, tmp_path):
    """The age limit compares the manifest's creation time with the time given."""
    migrate.upgrade(database, "0098")
    archive = backup(database, tmp_path / "b.tar.gz")
    later = datetime.now(UTC) + timedelta(hours=25)

    assert check_backup(archive, url=database, revision="0098", max_age=timedelta(hours=24))
    with pytest.raises(BackupRequired, match="hours old"):
        check_backup(archive, url=database, revision="0098", max_age=timedelta(hours=24), now=later)
