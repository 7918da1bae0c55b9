"""``tikflow keys``: envelope key status, a new key, and re-encryption under the current key.

Rotating the key that encrypts device credentials needs no downtime:

1. ``tikflow keys generate`` prints a new key.
2. Set ``TIKFLOW_MASTER_KEY=<new>,<old>`` on every api and worker and restart them one at a time.
   The first key is the current one: new secrets are sealed with it, and both keys open old rows.
3. ``tikflow keys rotate`` re-encrypts every credential still sealed with an older key.
4. Once ``tikflow keys status`` shows no row under the old key, drop it from the variable.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import asdict, dataclass, field

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from storage.crypto import KeyRing, SecretDecryptionError, generate_key, key_id_of
from storage.db import Database
from storage.models import Credential

app = typer.Typer(name="keys", help="Inspect and rotate the credential encryption key.",
                  no_args_is_help=True)
out = Console()
BATCH_SIZE = 200


@dataclass
class RotationReport:
    """Counts from one re-encryption pass."""

    current_key_id: str
    reencrypted: int = 0
    already_current: int = 0
    unreadable: list[int] = field(default_factory=list)


async def reencrypt_credentials(db: Database, keys: KeyRing) -> RotationReport:
    """Re-encrypt every credential not sealed with the current key, in batches.

    Each batch commits on its own, so an interrupted run loses nothing and a second run picks
    up where it stopped. Rows that no key in the ring opens are listed, never changed.
    """
    report = RotationReport(current_key_id=keys.current_id)
    last_id = 0
    while True:
        async with db.session() as session:
            batch = (await session.scalars(
                select(Credential).where(Credential.id > last_id).order_by(Credential.id)
                .limit(BATCH_SIZE))).all()
            for credential in batch:
                _reencrypt_one(credential, keys, report)
        if not batch:
            return report
        last_id = batch[-1].id


def _reencrypt_one(credential: Credential, keys: KeyRing, report: RotationReport) -> None:
    if credential.key_id == keys.current_id:
        report.already_current += 1
        return
    try:
        ciphertext, key_id = keys.reencrypt(credential.secret_ciphertext, credential.key_id)
    except SecretDecryptionError:
        report.unreadable.append(credential.id)
        return
    credential.secret_ciphertext, credential.key_id = ciphertext, key_id
    report.reencrypted += 1


async def count_by_key(db: Database) -> Counter[str]:
    async with db.session() as session:
        return Counter((await session.scalars(select(Credential.key_id))).all())


def _load() -> tuple[Database, KeyRing, set[str]]:
    """Return the database, the key ring and the ids of every key in the ring."""
    from inventory.devices import load_key_ring
    from tikflow.commands.core import load_settings

    settings = load_settings()
    try:
        keys = load_key_ring(settings)
    except (RuntimeError, ValueError) as err:
        out.print(f"[red]error:[/red] {err}", highlight=False)
        raise typer.Exit(2) from None
    key_ids = {keys.current_id}
    if settings.master_key is not None:
        key_ids |= {key_id_of(key.strip())
                    for key in settings.master_key.get_secret_value().split(",") if key.strip()}
    return Database(settings.database.url), keys, key_ids


@app.command("generate")
def generate() -> None:
    """Print a new random envelope key (urlsafe base64, 32 bytes)."""
    typer.echo(generate_key())


@app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table")) -> None:
    """Show how many credentials each key seals and whether the key ring contains that key."""
    db, keys, key_ids = _load()

    async def run() -> Counter[str]:
        try:
            return await count_by_key(db)
        finally:
            await db.dispose()

    counts = asyncio.run(run())
    rows = [{"key_id": key_id, "credentials": number, "current": key_id == keys.current_id,
             "in_key_ring": key_id in key_ids}
            for key_id, number in sorted(counts.items())]
    if as_json:
        typer.echo(json.dumps({"current_key_id": keys.current_id, "keys": rows}, indent=2))
        return
    table = Table("key id", "credentials", "current", "in key ring")
    for row in rows:
        table.add_row(row["key_id"], str(row["credentials"]), "yes" if row["current"] else "",
                      "yes" if row["in_key_ring"] else "[red]missing[/red]")
    out.print(f"current key id: {keys.current_id}")
    out.print(table)


@app.command("rotate")
def rotate(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text")) -> None:
    """Re-encrypt every credential with the current (first) key of TIKFLOW_MASTER_KEY.

    Exits 1 when some credential opens with no key in the ring; those rows are left as they are.
    """
    db, keys, _ = _load()

    async def run() -> RotationReport:
        try:
            return await reencrypt_credentials(db, keys)
        finally:
            await db.dispose()

    report = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(asdict(report), indent=2))
    else:
        out.print(f"re-encrypted {report.reencrypted} credentials with key {report.current_key_id}; "
                  f"{report.already_current} already used it", highlight=False)
        if report.unreadable:
            out.print(f"[red]no key in TIKFLOW_MASTER_KEY opens credentials {report.unreadable}; "
                      "add the key that sealed them and run again[/red]", highlight=False)
    if report.unreadable:
        raise typer.Exit(1)
