"""Migrations on both databases: up to head, down to base, up again, and models equal to schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from storage.db import create_engine
from storage.migrate import downgrade, load_all_models, migration_check, upgrade


async def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()


async def _schema_differences(url: str) -> list:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), load_all_models()))
    finally:
        await engine.dispose()


async def test_migrations_round_trip(database_url: str):
    """Empty -> head -> base -> head works, and the migrated schema matches the models."""
    upgrade(database_url)
    head = await _revision(database_url)
    assert migration_check(head) == "ok"
    assert await _schema_differences(database_url) == []

    downgrade(database_url, "base")
    assert await _revision(database_url) is None

    upgrade(database_url)
    assert await _revision(database_url) == head


def test_migration_check_reports_only_a_database_behind():
    """Behind the code is not ready; ahead of it (a newer release migrated) stays ready."""
    assert migration_check("0001").startswith("database at 0001, behind")
    assert migration_check(None).startswith("database at None")
    assert migration_check("ffff-from-a-newer-release") == "ok"


def _revisions() -> list[tuple[str, bool]]:
    """Return (revision, destructive) pairs, oldest first."""
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [(rev.revision, bool(getattr(rev.module, "destructive", False)))
            for rev in reversed(list(script.walk_revisions()))]


async def _columns(url: str) -> dict[str, dict[str, dict]]:
    from sqlalchemy import inspect

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            def read(sync):
                inspector = inspect(sync)
                return {table: {c["name"]: c for c in inspector.get_columns(table)}
                        for table in inspector.get_table_names()}
            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def test_each_revision_keeps_previous_release_working(tmp_path):
    """Each revision after the first only adds to the schema.

    No table or column of the previous revision goes away. Every new column of an existing table
    is nullable or has a server default, so the previous release still inserts and reads.
    """
    revisions = _revisions()
    assert len(revisions) >= 2
    for (previous, _), (current, destructive) in zip(revisions, revisions[1:], strict=False):
        if destructive:
            # A contract step: it may drop what the previous release used, and the migrate
            # command demands a fresh backup before it runs.
            continue
        before_url = f"sqlite+aiosqlite:///{tmp_path}/{previous}.db"
        after_url = f"sqlite+aiosqlite:///{tmp_path}/{current}.db"
        upgrade(before_url, previous)
        upgrade(after_url, current)
        before, after = await _columns(before_url), await _columns(after_url)
        for table, columns in before.items():
            assert table in after, f"revision {current} drops table {table}"
            for name in columns:
                assert name in after[table], f"revision {current} drops {table}.{name}"
            for name, column in after[table].items():
                if name in columns:
                    continue
                assert column["nullable"] or column.get("default") is not None, (
                    f"revision {current} adds {table}.{name} NOT NULL without a server default; "
                    "the previous release cannot insert rows")
