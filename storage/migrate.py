"""Run Alembic migrations programmatically (``tikflow migrate``)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


# Modules outside storage.models that declare tables on the shared metadata.
MODEL_MODULES = ("storage.models", "api.ratelimit", "api.breakglass")


def load_all_models():
    """Import every module that declares tables; return the shared metadata."""
    import importlib

    for name in MODEL_MODULES:
        importlib.import_module(name)
    from storage.models import Base

    return Base.metadata


def alembic_config(url: str) -> Config:
    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _outside_event_loop(fn, *args) -> None:
    """Run ``fn`` where ``asyncio.run`` is allowed: in a thread when a loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        fn(*args)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(fn, *args).result()


def upgrade(url: str, revision: str = "head") -> None:
    _outside_event_loop(command.upgrade, alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    _outside_event_loop(command.downgrade, alembic_config(url), revision)


def current_heads() -> set[str]:
    """Return the head revisions of the migration scripts shipped with this code."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def migration_check(revision: str | None) -> str:
    """Return "ok" unless the database is behind this code's migrations.

    A database ahead of the code (a newer release migrated it, additive changes only) stays
    ready, so an older release can still serve during a rolling update or a rollback.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = set(script.get_heads())
    if revision in heads:
        return "ok"
    known = {rev.revision for rev in script.walk_revisions()}
    if revision is None or revision in known:
        return f"database at {revision}, behind {sorted(heads)}; run `tikflow migrate upgrade`"
    return "ok"
