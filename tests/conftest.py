"""Servers shared by the whole test run: the Temporal dev server and PostgreSQL.

Both start on first use and stop at the end of the session, so a run that needs neither pays
nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer, start_postgres
from tests.support.temporal import TemporalDevServer, start_temporal_dev_server


@pytest.fixture(scope="session")
def temporal_server() -> Iterator[TemporalDevServer]:
    server = start_temporal_dev_server()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    """An empty database on each backend, migrated to head by the test that needs it."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/tikflow.db"
    return request.getfixturevalue("postgres_server").create_database()
