"""``tikflow keys rotate`` moves every credential to the new envelope key without losing one."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import select

from storage.crypto import KeyRing, key_id_of
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Credential, Device

TIKFLOW = str(Path(sys.executable).with_name("tikflow"))
CLI_TIMEOUT = 60.0


async def run_keys(database_url: str, master_key: str, *args: str) -> tuple[int, str, str]:
    env = os.environ | {"TIKFLOW_MASTER_KEY": master_key, "TIKFLOW_DATABASE__URL": database_url}
    process = await asyncio.create_subprocess_exec(
        TIKFLOW, "keys", *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def seed(db: Database, keys: KeyRing, secrets: list[str]) -> None:
    async with db.session() as session:
        session.add(Device(id="dev-keys", name="keys-1", address="192.0.2.1", port=8728,
                           transport="api", environment="lab", tags=[], capabilities={}, facts={}))
        await session.flush()
        for generation, secret in enumerate(secrets, start=1):
            ciphertext, key_id = keys.encrypt(secret)
            session.add(Credential(device_id="dev-keys", username="tikflow", secret_ciphertext=ciphertext,
                                   key_id=key_id, generation=generation, state="retired", active=False))


async def test_keys_rotate_reencrypts_every_credential(database_url: str) -> None:
    """After rotate, every row opens with the new key alone and decrypts to the same secret."""
    await asyncio.to_thread(upgrade, database_url)
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    secrets = [f"router-secret-{n}" for n in range(5)]
    db = Database(database_url)
    try:
        await seed(db, KeyRing(old), secrets)

        code, stdout, stderr = await run_keys(database_url, f"{new},{old}", "rotate", "--json")
        again = await run_keys(database_url, f"{new},{old}", "rotate", "--json")
        status = await run_keys(database_url, new, "status", "--json")

        assert code == 0, stderr
        assert json.loads(stdout)["reencrypted"] == 5
        assert json.loads(again[1])["already_current"] == 5
        assert json.loads(status[1])["keys"] == [
            {"key_id": key_id_of(new), "credentials": 5, "current": True, "in_key_ring": True}]
        for secret in secrets:
            assert secret not in stdout + stderr
        new_only = KeyRing(new)
        async with db.session() as session:
            rows = (await session.scalars(select(Credential).order_by(Credential.generation))).all()
        assert [new_only.decrypt(r.secret_ciphertext, r.key_id) for r in rows] == secrets
    finally:
        await db.dispose()


async def test_keys_rotate_reports_rows_no_key_opens(database_url: str) -> None:
    """Rows sealed with a key missing from the ring are listed, left unchanged, and exit 1."""
    await asyncio.to_thread(upgrade, database_url)
    lost, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    db = Database(database_url)
    try:
        await seed(db, KeyRing(lost), ["orphan-secret"])

        code, stdout, _ = await run_keys(database_url, new, "rotate")
        status = await run_keys(database_url, new, "status", "--json")

        assert code == 1
        assert "no key in TIKFLOW_MASTER_KEY opens credentials" in stdout
        assert json.loads(status[1])["keys"][0]["in_key_ring"] is False
        async with db.session() as session:
            row = await session.scalar(select(Credential))
        assert KeyRing(lost).decrypt(row.secret_ciphertext, row.key_id) == "orphan-secret"
    finally:
        await db.dispose()
