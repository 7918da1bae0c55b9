"""Backup archives of tikflow's database and restore from them.

An archive is a gzip-compressed tar file with three members:

- ``manifest.json``: format version, creation time, tikflow version, alembic revision, database
  backend, row count per table, the ids of the envelope keys that sealed stored credentials, and
  the SHA-256 and size of every other member;
- ``database.dump`` (PostgreSQL custom format from ``pg_dump -Fc``) or ``database.sqlite`` (a
  copy made with SQLite's online backup API);
- ``config.json``: the effective settings with every secret masked.

Credentials stay encrypted in the dump. The master key is never part of an archive, so a restore
is only useful together with the key (or key ring) that was in use when the backup was taken.
"""

from __future__ import annotations

import asyncio
import glob
import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, func, inspect, select, table, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from storage.db import create_engine
from tikflow.configinfo.masking import mask_url
from tikflow.version import __version__

FORMAT = "tikflow-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.json"
POSTGRES_DUMP = "database.dump"
SQLITE_COPY = "database.sqlite"
MEMBERS = {MANIFEST, CONFIG, POSTGRES_DUMP, SQLITE_COPY}
# pg_dump and pg_restore get this long before they count as hung.
PG_TOOL_TIMEOUT_SECONDS = 3600
_CHUNK = 1 << 20


class BackupError(Exception):
    """A backup or restore failed; the message names the cause and what to do."""


class BackupInvalid(BackupError):
    """The archive or the target database is unsuitable; retrying the same call cannot help."""


@dataclass(frozen=True)
class BackupManifest:
    """Contents and origin of a backup archive, stored as its ``manifest.json``."""

    created_at: str
    tikflow_version: str
    alembic_revision: str | None
    backend: str
    source_database: str
    row_counts: dict[str, int]
    credential_key_ids: list[str]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    master_key_included: bool = False
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, data: bytes) -> BackupManifest:
        """Parse a manifest, rejecting other formats and newer format versions."""
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise BackupInvalid("the archive is not a tikflow backup (manifest format "
                                  f"{raw.get('format')!r})")
            if raw.get("format_version") != FORMAT_VERSION:
                raise BackupInvalid(f"backup format version {raw.get('format_version')} is not "
                                  f"supported by tikflow {__version__}, which reads version "
                                  f"{FORMAT_VERSION}; restore with the release that wrote it")
            return cls(**raw)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BackupInvalid(f"the backup manifest is invalid: {exc}") from None


# -- database inspection --------------------------------------------------------------------


def backend_of(url: str) -> str:
    """Return ``postgresql`` or ``sqlite`` for a SQLAlchemy URL; raise BackupError otherwise."""
    try:
        backend = make_url(url).get_backend_name()
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several types for a malformed URL
        raise BackupInvalid(f"invalid database URL {mask_url(url)!r}; expected "
                          "postgresql+asyncpg://... or sqlite+aiosqlite:///path") from None
    if backend not in ("postgresql", "sqlite"):
        raise BackupInvalid(f"database backend {backend!r} is not supported; use PostgreSQL or SQLite")
    return backend


def sqlite_path(url: str) -> Path:
    """Return the file of a SQLite URL; in-memory databases cannot be backed up."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupInvalid("an in-memory SQLite database cannot be backed up or restored; "
                          "use a file URL such as sqlite+aiosqlite:///var/tikflow.db")
    return Path(database)


async def table_row_counts(url: str) -> dict[str, int]:
    """Return the number of rows of every table in the database, alembic's own included."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            counts = {}
            for name in sorted(names):
                counts[name] = (await connection.execute(
                    select(func.count()).select_from(table(name)))).scalar_one()
            return counts
    except (SQLAlchemyError, OSError) as exc:
        raise BackupError(f"cannot read the database at {mask_url(url)}: "
                          f"{type(exc).__name__}: {exc}") from None
    finally:
        await engine.dispose()


async def database_revision(url: str) -> str | None:
    """Return the alembic revision stored in the database, or None before the first migration."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            if "alembic_version" not in names:
                return None
            return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except (SQLAlchemyError, OSError) as exc:
        raise BackupError(f"cannot read the revision of {mask_url(url)}: "
                          f"{type(exc).__name__}: {exc}") from None
    finally:
        await engine.dispose()


async def credential_key_ids(url: str) -> list[str]:
    """Return the ids of the envelope keys that sealed the stored credentials."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
            if "credentials" not in names:
                return []
            rows = await connection.execute(text("SELECT DISTINCT key_id FROM credentials"))
            return sorted(row[0] for row in rows)
    finally:
        await engine.dispose()


async def drop_all_tables(url: str) -> None:
    """Drop every table of the target database, so a restore starts from an empty schema."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            def drop(sync) -> None:
                metadata = MetaData()
                metadata.reflect(sync)
                metadata.drop_all(sync)

            await connection.run_sync(drop)
    finally:
        await engine.dispose()


def known_revisions() -> set[str]:
    """Return every alembic revision shipped with this release."""
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config

    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()}


# -- PostgreSQL tools ---------------------------------------------------------------------


def postgres_tool(name: str) -> str:
    """Return the newest ``pg_dump`` or ``pg_restore``: Debian's versioned folders, then PATH.

    pg_dump refuses servers newer than itself, so the highest installed major version wins.
    """
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    if candidates:
        return candidates[-1]
    found = shutil.which(name)
    if found:
        return found
    raise BackupError(f"{name} not found under /usr/lib/postgresql/*/bin or on PATH; install the "
                      "PostgreSQL client package (Debian: postgresql-client)")


def libpq_arguments(url: str) -> tuple[list[str], dict[str, str]]:
    """Turn a SQLAlchemy URL into pg_dump/pg_restore options and environment variables.

    The password travels in ``PGPASSWORD`` so it never appears in the process list.
    """
    parsed: URL = make_url(url)
    arguments = ["--host", parsed.host or "localhost", "--port", str(parsed.port or 5432),
                 "--dbname", parsed.database or ""]
    if parsed.username:
        arguments += ["--username", parsed.username]
    env = {"PGCONNECT_TIMEOUT": "10"}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    ssl = parsed.query.get("ssl") or parsed.query.get("sslmode")
    if isinstance(ssl, str):
        env["PGSSLMODE"] = ssl
    return arguments, env


async def run_postgres_tool(name: str, arguments: list[str], url: str) -> None:
    """Run pg_dump or pg_restore against ``url``; raise BackupError with its stderr on failure."""
    connection, env = libpq_arguments(url)
    process = await asyncio.create_subprocess_exec(
        postgres_tool(name), *arguments, *connection, env=os.environ | env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), PG_TOOL_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise BackupError(f"{name} did not finish within {PG_TOOL_TIMEOUT_SECONDS} s") from None
    if process.returncode != 0:
        message = stderr.decode("utf-8", "replace").strip()
        password = env.get("PGPASSWORD")
        if password:
            message = message.replace(password, "********")
        raise BackupError(f"{name} failed (exit {process.returncode}): {message[-2000:]}")


# -- archive reading and writing ----------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_archive(output: Path, manifest: BackupManifest, members: dict[str, Path]) -> None:
    """Write the archive next to ``output`` and rename it into place, readable by the owner only."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, partial_name = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    partial = Path(partial_name)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            body = manifest.to_json().encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(body), int(manifest.created.timestamp()), 0o600
            archive.addfile(info, io.BytesIO(body))
            for name, path in members.items():
                archive.add(path, arcname=name, recursive=False)
        os.chmod(partial, 0o600)
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@contextmanager
def opened_archive(path: Path) -> Iterator[tuple[BackupManifest, Path]]:
    """Unpack an archive into a private temporary folder and check every member's checksum.

    Yields the manifest and the folder. Only regular files with the expected names are read,
    so an archive cannot write outside the folder.

    Raises:
        BackupError: the file is missing, damaged, not a tikflow backup, or a checksum differs.
    """
    if not path.is_file():
        raise BackupInvalid(f"backup file {path} does not exist")
    with tempfile.TemporaryDirectory(prefix="tikflow-restore-") as folder:
        workdir = Path(folder)
        try:
            manifest_data = _unpack_members(path, workdir)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise BackupInvalid(f"backup file {path} is damaged or not a tikflow backup: "
                              f"{type(exc).__name__}: {exc}") from None
        if manifest_data is None:
            raise BackupInvalid(f"backup file {path} has no {MANIFEST}; it is not a tikflow backup")
        manifest = BackupManifest.from_json(manifest_data)
        verify_checksums(manifest, workdir, path)
        yield manifest, workdir


def _unpack_members(path: Path, workdir: Path) -> bytes | None:
    # Decompress the whole stream once first: gzip checks its CRC only at the end, and tarfile
    # may stop early at a damaged header without reading that far.
    with gzip.open(path, "rb") as stream:
        while stream.read(_CHUNK):
            pass
    manifest: bytes | None = None
    with tarfile.open(path, mode="r:gz") as archive:
        for member in archive:
            if member.name not in MEMBERS or not member.isfile():
                raise BackupInvalid(f"backup file {path} contains an unexpected member "
                                  f"{member.name!r}; it was not written by tikflow backup")
            source = archive.extractfile(member)
            if member.name == MANIFEST:
                manifest = source.read()
                continue
            with (workdir / member.name).open("wb") as target:
                shutil.copyfileobj(source, target, _CHUNK)
    return manifest


def verify_checksums(manifest: BackupManifest, workdir: Path, path: Path) -> None:
    """Compare each member with the SHA-256 and size the manifest lists."""
    for name, expected in manifest.files.items():
        member = workdir / name
        if not member.is_file():
            raise BackupInvalid(f"backup file {path} is damaged: it lacks {name}, which its "
                                "manifest lists")
        if member.stat().st_size != expected.get("size") or sha256_of(member) != expected.get("sha256"):
            raise BackupInvalid(f"checksum of {name} in {path} does not match the manifest; the "
                              "archive is corrupted, use another backup")


def read_manifest(path: Path) -> BackupManifest:
    """Return the manifest of an archive after checking every member's checksum."""
    with opened_archive(path) as (manifest, _):
        return manifest


# -- backup -------------------------------------------------------------------------------


async def create_backup(url: str, output: Path, *, config: dict[str, Any]) -> BackupManifest:
    """Dump the database at ``url`` and the masked ``config`` into the archive ``output``.

    Raises:
        BackupError: the database cannot be read or the dump tool failed.
    """
    backend = backend_of(url)
    if await asyncio.to_thread(output.exists):
        raise BackupInvalid(f"{output} already exists; choose a new file name, so no earlier "
                            "backup is overwritten")
    if backend == "sqlite" and not sqlite_path(url).is_file():
        # Opening a missing SQLite file would create an empty database and back that up.
        raise BackupInvalid(f"SQLite database {sqlite_path(url)} does not exist; check the "
                            "database URL")
    revision = await database_revision(url)
    # Counted before the dump: rows written in between make the restored counts higher,
    # never lower, so restore can still check that nothing is missing.
    counts = await table_row_counts(url)
    with tempfile.TemporaryDirectory(prefix="tikflow-backup-") as folder:
        workdir = Path(folder)
        if backend == "postgresql":
            dump = workdir / POSTGRES_DUMP
            await run_postgres_tool("pg_dump", ["--format=custom", "--no-owner", "--no-privileges",
                                                "--file", str(dump)], url)
        else:
            dump = workdir / SQLITE_COPY
            await asyncio.to_thread(copy_sqlite, sqlite_path(url), dump)
        config_file = workdir / CONFIG
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True))
        members = {dump.name: dump, CONFIG: config_file}
        manifest = BackupManifest(
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            tikflow_version=__version__,
            alembic_revision=revision,
            backend=backend,
            source_database=mask_url(url),
            row_counts=counts,
            credential_key_ids=await credential_key_ids(url),
            files={name: {"sha256": sha256_of(path), "size": path.stat().st_size}
                   for name, path in members.items()},
        )
        await asyncio.to_thread(write_archive, output, manifest, members)
    return manifest


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy a live SQLite database page by page with the online backup API."""
    with _sqlite(source) as src, _sqlite(target) as dst:
        src.backup(dst)


@contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


# -- restore ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    """Outcome of a restore: the manifest, the restored row counts, and rows it replaced."""

    manifest: BackupManifest
    row_counts: dict[str, int]
    replaced_rows: int


async def restore_backup(archive: Path, url: str, *, force: bool = False) -> RestoreResult:
    """Restore ``archive`` into the database at ``url``.

    The target must contain no rows unless ``force`` is set, but empty tables left by
    ``migrate upgrade`` are fine. Its tables are dropped first either way, so the restored
    schema is exactly the backup's.

    Raises:
        BackupError: the archive is damaged, from an unknown revision or another backend, the
            target contains rows and ``force`` is not set, or the restore tool failed.
    """
    backend = backend_of(url)
    with opened_archive(archive) as (manifest, workdir):
        check_restorable(manifest, backend)
        existing = await table_row_counts(url)
        rows = sum(count for name, count in existing.items() if name != "alembic_version")
        if rows and not force:
            raise BackupInvalid(f"the target database {mask_url(url)} is not empty ({rows} rows); "
                              "restore into a new, empty database, or pass --force to replace "
                              "its contents")
        if backend == "postgresql":
            await drop_all_tables(url)
            # --clean drops what the tables do not own, such as the audit guard's trigger
            # function, so a replaced database takes the backup's definitions.
            await run_postgres_tool("pg_restore", ["--no-owner", "--no-privileges", "--clean",
                                                   "--if-exists", "--exit-on-error",
                                                   "--single-transaction",
                                                   str(workdir / POSTGRES_DUMP)], url)
        else:
            await asyncio.to_thread(restore_sqlite, workdir / SQLITE_COPY, sqlite_path(url))
    restored = await table_row_counts(url)
    check_restored(manifest, restored, await database_revision(url))
    return RestoreResult(manifest=manifest, row_counts=restored, replaced_rows=rows)


def check_restorable(manifest: BackupManifest, backend: str) -> None:
    """Reject a backup of another backend or of a schema revision this release does not know."""
    if manifest.backend != backend:
        raise BackupInvalid(f"the backup is of a {manifest.backend} database and cannot be restored "
                          f"into {backend}; restore it into a {manifest.backend} database")
    revision = manifest.alembic_revision
    if revision is not None and revision not in known_revisions():
        raise BackupInvalid(f"the backup is at schema revision {revision}, which tikflow "
                          f"{__version__} does not know; restore it with tikflow "
                          f"{manifest.tikflow_version} or newer")


def check_restored(manifest: BackupManifest, restored: dict[str, int], revision: str | None) -> None:
    """Compare the restored database with the manifest's revision and row counts."""
    if revision != manifest.alembic_revision:
        raise BackupError(f"the restored database is at revision {revision}, the backup at "
                          f"{manifest.alembic_revision}; the restore is incomplete")
    short = {name: (count, restored.get(name, 0)) for name, count in manifest.row_counts.items()
             if restored.get(name, 0) < count}
    if short:
        detail = ", ".join(f"{name} {got}/{want}" for name, (want, got) in sorted(short.items()))
        raise BackupError(f"the restored database has fewer rows than the backup ({detail})")


def restore_sqlite(source: Path, target: Path) -> None:
    """Overwrite the SQLite database ``target`` with ``source`` through the backup API."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _sqlite(source) as src, _sqlite(target) as dst:
        src.backup(dst)
