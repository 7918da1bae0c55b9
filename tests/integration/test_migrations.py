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
