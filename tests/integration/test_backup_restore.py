"""Backup and restore on both databases: row-for-row round trip, guards, and damaged archives."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest
from sqlalchemy import MetaData, select

from api.breakglass import create_account
from inventory.devices import Inventory, new_device_id
from planning.model import DeviceDiff, DiffEntry, ResolvedChange, ResolvedPlan, RiskAssessment
from storage.audit import record_audit
from storage.backup import (
    BackupError,
    BackupInvalid,
    create_backup,
    read_manifest,
    restore_backup,
)
from storage.crypto import KeyRing, generate_key
from storage.db import Database, create_engine
from storage.incident import set_switch
from storage.migrate import upgrade
from storage.models import Credential, Device, Snapshot
from storage.plans import save_plan
from tikflow.devstack import venv_binary

PASSWORD = "router-password-that-must-stay-encrypted"
CONFIG = {"database.url": {"value": "sqlite+aiosqlite:///var/tikflow.db", "source": "default"},
          "master_key": {"value": "********", "source": "env"}}


def second_database(database_url: str, postgres_server, tmp_path: Path) -> str:
    """Return an empty database on the same backend as ``database_url``."""
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}/restored/tikflow.db"
    return postgres_server.create_database()


def sample_plan(device_id: str) -> ResolvedPlan:
    entry = DiffEntry(seq=1, path="/ip/address", action="add", id=None, before=None,
                      after={"address": "10.9.0.1/24", "interface": "bridge"})
    return ResolvedPlan(
        description="add a lab address",
        changes=[ResolvedChange(seq=1, device_id=device_id, device_name="core-1", path="/ip/address",
                                action="add", values={"address": "10.9.0.1/24", "interface": "bridge"})],
        diff=[DeviceDiff(device_id=device_id, device_name="core-1", environment="lab",
                         entries=[entry], text="+ /ip/address add address=10.9.0.1/24")],
        risk=RiskAssessment(level="low", reasons=["adds one address"], blast_radius={"devices": 1}),
        fingerprints={device_id: {"/ip/address": "0" * 64}},
    )


async def populate(url: str, keys: KeyRing) -> None:
    """Fill every kind of record through the product's own storage functions."""
    upgrade(url)
    db = Database(url)
    inventory = Inventory(db, keys)
    try:
        device_id = new_device_id()
        async with db.session() as session:
            session.add(Device(id=device_id, name="core-1", address="192.0.2.1", port=8728,
                               transport="api", environment="lab", status="active",
                               tags=["edge"], capabilities={"bgp": True}, facts={"uptime": "1d"}))
        await inventory.add_credential(device_id, "tikflow", PASSWORD)
        plan = await save_plan(db, sample_plan(device_id), author="alice", rollout={"canary": 1})
        await record_audit(db, actor="alice", action="plan.create.v1", result="ok",
                           arguments={"password": "hidden"}, device_ids=[device_id], plan_id=plan.id)
        await record_audit(db, actor="bob", action="device.list.v1", result="ok",
                           detail="ünïcode détail")
        async with db.session() as session:
            session.add(Snapshot(device_id=device_id, reason="scheduled", export_text="/ip address\n",
                                 sha256="a" * 64))
            session.add(Snapshot(device_id=device_id, reason="pre-apply", plan_id=plan.id,
                                 tables={"/ip/address": [{".id": "*1"}]}, sha256="b" * 64))
        await set_switch(db, "plan_apply", engaged=True, by="alice", reason="rehearsal")
        await create_account(db, name="oncall", role="admin", created_by="alice")
    finally:
        await db.dispose()


async def all_rows(url: str) -> dict[str, list[tuple]]:
    """Return every row of every table, sorted, so two databases can be compared exactly."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            metadata = MetaData()
            await connection.run_sync(metadata.reflect)
            rows = {}
            for name, table in sorted(metadata.tables.items()):
                result = await connection.execute(select(table))
                rows[name] = sorted((tuple(row) for row in result), key=repr)
            return rows
    finally:
        await engine.dispose()


async def test_backup_restores_row_for_row(database_url, postgres_server, tmp_path):
    """A backup restored into an empty database has the same rows and readable credentials."""
    keys = KeyRing(generate_key())
    await populate(database_url, keys)
    archive = tmp_path / "tikflow.tar.gz"

    manifest = await create_backup(database_url, archive, config=CONFIG)
    target = second_database(database_url, postgres_server, tmp_path)
    result = await restore_backup(archive, target)

    source_rows, restored_rows = await all_rows(database_url), await all_rows(target)
    assert restored_rows == source_rows
    for table in ("devices", "credentials", "plans", "plan_changes", "audit_events", "snapshots",
                  "incident_switches", "break_glass_accounts"):
        assert restored_rows[table], f"{table} is empty, so the comparison proves nothing"
    assert manifest.alembic_revision == result.manifest.alembic_revision
    assert manifest.credential_key_ids == [keys.current_id]
    assert manifest.master_key_included is False
    assert os.stat(archive).st_mode & 0o077 == 0

    db = Database(target)
    try:
        async with db.session() as session:
            credential = await session.scalar(select(Credential))
        assert keys.decrypt(credential.secret_ciphertext, credential.key_id) == PASSWORD
    finally:
        await db.dispose()


async def test_restored_instance_serves_records(database_url, postgres_server, tmp_path):
    """An api started on the restored database lists the device, plan, audit and snapshots."""
    from api.app import create_app
    from tests.support.lifecycle import serve
    from tikflow.settings import Settings

    key = generate_key()
    await populate(database_url, KeyRing(key))
    archive = tmp_path / "tikflow.tar.gz"
    await create_backup(database_url, archive, config=CONFIG)
    target = second_database(database_url, postgres_server, tmp_path)
    await restore_backup(archive, target)

    token = "restore-check-token"
    settings = Settings(env="lab", dev_token=token, master_key=key, var_dir=tmp_path / "var",
                        database={"url": target})
    server, task, port = await serve(create_app(settings))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            device = (await http.get("/devices/core-1")).json()
            plans = (await http.get("/plans")).json()
            audit = (await http.get("/audit", params={"actor": "alice"})).json()
            snapshots = (await http.get("/devices/core-1/snapshots")).json()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)

    assert device["status"] == "active"
    assert [c["username"] for c in device["credentials"]] == ["tikflow"]
    assert device["snapshots"] == 2
    assert [p["description"] for p in plans["items"]] == ["add a lab address"]
    assert [e["action"] for e in audit["items"]] == ["plan.create.v1"]
    assert sorted(s["reason"] for s in snapshots["items"]) == ["pre-apply", "scheduled"]


async def test_backup_keeps_credentials_encrypted(database_url, tmp_path):
    """Neither the password nor the master key appears anywhere in the archive."""
    key = generate_key()
    await populate(database_url, KeyRing(key))
    archive = tmp_path / "tikflow.tar.gz"
    await create_backup(database_url, archive, config=CONFIG)

    with tarfile.open(archive, "r:gz") as opened:
        names = opened.getnames()
        content = b"".join(opened.extractfile(member).read() for member in opened.getmembers())
    dump = "database.sqlite" if database_url.startswith("sqlite") else "database.dump"
    assert sorted(names) == sorted(["manifest.json", "config.json", dump])
    assert PASSWORD.encode() not in content
    assert key.encode() not in content


async def test_restore_rejects_database_with_rows(database_url, postgres_server, tmp_path):
    """A target holding rows is refused without --force and replaced with it."""
    await populate(database_url, KeyRing(generate_key()))
    archive = tmp_path / "tikflow.tar.gz"
    await create_backup(database_url, archive, config=CONFIG)
    target = second_database(database_url, postgres_server, tmp_path)
    await populate(target, KeyRing(generate_key()))

    with pytest.raises(BackupInvalid, match="is not empty"):
        await restore_backup(archive, target)
    result = await restore_backup(archive, target, force=True)

    assert result.replaced_rows > 0
    assert await all_rows(target) == await all_rows(database_url)


async def test_restore_rejects_corrupted_archive(tmp_path):
    """A flipped byte, a truncated file and a swapped member are each refused before any write."""
    url = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    await populate(url, KeyRing(generate_key()))
    archive = tmp_path / "good.tar.gz"
    await create_backup(url, archive, config=CONFIG)
    target = f"sqlite+aiosqlite:///{tmp_path}/target.db"

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BackupInvalid, match="damaged"):
        await restore_backup(truncated, target)

    flipped = tmp_path / "flipped.tar.gz"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    with pytest.raises(BackupInvalid, match="damaged|checksum"):
        await restore_backup(flipped, target)

    swapped = tmp_path / "swapped.tar.gz"
    rewrite_member(archive, swapped, "config.json", b'{"edited": true}')
    with pytest.raises(BackupInvalid, match="checksum of config.json"):
        await restore_backup(swapped, target)

    assert not await asyncio.to_thread((tmp_path / "target.db").exists)


async def test_restore_rejects_unknown_revision_and_backend(tmp_path, postgres_server):
    """A backup from a newer schema, or of the other backend, is refused with the reason."""
    url = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    await populate(url, KeyRing(generate_key()))
    archive = tmp_path / "good.tar.gz"
    await create_backup(url, archive, config=CONFIG)

    newer = tmp_path / "newer.tar.gz"
    manifest = read_manifest(archive).to_json().replace(
        f'"alembic_revision": "{read_manifest(archive).alembic_revision}"',
        '"alembic_revision": "9999"')
    rewrite_member(archive, newer, "manifest.json", manifest.encode())
    with pytest.raises(BackupInvalid, match="revision 9999, which tikflow"):
        await restore_backup(newer, f"sqlite+aiosqlite:///{tmp_path}/target.db")

    with pytest.raises(BackupInvalid, match="sqlite database and cannot be restored into postgresql"):
        await restore_backup(archive, postgres_server.create_database())


async def test_backup_reports_unreadable_database(tmp_path):
    """A SQLite file that does not exist is named in the error."""
    with pytest.raises(BackupError, match="does not exist"):
        await create_backup(f"sqlite+aiosqlite:///{tmp_path}/missing.db", tmp_path / "x.tar.gz",
                            config=CONFIG)
    assert not (tmp_path / "x.tar.gz").exists()


async def run_tikflow(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the tikflow command line in a thread, so the event loop keeps serving."""
    return await asyncio.to_thread(subprocess.run, [venv_binary("tikflow"), *arguments], env=env,
                                   capture_output=True, text=True, timeout=120)


def rewrite_member(source: Path, target: Path, name: str, body: bytes) -> None:
    """Copy an archive, replacing one member's content and keeping the manifest as it was."""
    with tarfile.open(source, "r:gz") as original, gzip.open(target, "wb") as raw, \
            tarfile.open(fileobj=raw, mode="w") as copy:
        for member in original.getmembers():
            data = body if member.name == name else original.extractfile(member).read()
            member.size = len(data)
            copy.addfile(member, io.BytesIO(data))


async def test_backup_and_restore_commands(tmp_path):
    """The CLI writes an archive, names the missing master key, and restores with exit codes."""
    url = f"sqlite+aiosqlite:///{tmp_path}/source.db"
    await populate(url, KeyRing(generate_key()))
    env = os.environ | {"TIKFLOW_ENV": "lab", "TIKFLOW_DATABASE__URL": url,
                        "TIKFLOW_VAR_DIR": str(tmp_path / "var")}
    env.pop("TIKFLOW_CONFIG", None)
    archive = tmp_path / "cli.tar.gz"

    written = await run_tikflow(env, "backup", "--output", str(archive))
    assert written.returncode == 0, written.stderr
    assert "master key is NOT in this backup" in written.stdout

    target = f"sqlite+aiosqlite:///{tmp_path}/restored.db"
    restored = await run_tikflow(env, "restore", "--input", str(archive), "--database-url", target)
    assert restored.returncode == 0, restored.stderr
    assert "restored" in restored.stdout
    assert await all_rows(target) == await all_rows(url)

    overwrite = await run_tikflow(env, "backup", "--output", str(archive))
    assert overwrite.returncode == 2
    assert "already exists" in overwrite.stderr

    again = await run_tikflow(env, "restore", "--input", str(archive), "--database-url", target)
    assert again.returncode == 2
    assert "is not empty" in again.stderr
    assert "--force" in again.stderr
