"""The device inventory: look devices up, store their credentials, and open sessions to them."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import or_, select

from routeros.client import DeviceClient
from routeros.pool import DevicePool
from routeros.target import DeviceTarget
from storage.crypto import KeyRing, generate_key
from storage.db import Database
from storage.models import Credential, Device
from tikflow.metrics import MeteredClient
from tikflow.settings import Profile, Settings

ENVIRONMENTS = ("lab", "staging", "prod")
TRANSPORTS = ("api", "api-ssl", "rest", "ssh")


class DeviceNotFound(LookupError):
    """No device has the given id or name."""


class DeviceUnavailable(RuntimeError):
    """The device exists but cannot be used now (inactive, or without a credential)."""


def new_device_id() -> str:
    return "dev-" + secrets.token_hex(5)


def load_key_ring(settings: Settings) -> KeyRing:
    """Return the envelope key ring; in the lab profile, create a local key on first use."""
    if settings.master_key is not None:
        keys = [k.strip() for k in settings.master_key.get_secret_value().split(",") if k.strip()]
        return KeyRing(keys[0], *keys[1:])
    if settings.env is not Profile.LAB:
        raise RuntimeError(
            "TIKFLOW_MASTER_KEY (or TIKFLOW_MASTER_KEY_FILE) is required outside the lab profile; "
            "it encrypts device credentials at rest"
        )
    path = Path(settings.var_dir) / "master-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key())
    return KeyRing(path.read_text().strip())


class Inventory:
    """Device records and their encrypted credentials in the database."""

    def __init__(self, db: Database, keys: KeyRing) -> None:
        self.db = db
        self.keys = keys

    async def find(self, id_or_name: str) -> Device:
        """Return the device with this id or name.

        Raises:
            DeviceNotFound: with the known names, so a caller can correct a typo.
        """
        async with self.db.session() as session:
            device = await session.scalar(
                select(Device).where(or_(Device.id == id_or_name, Device.name == id_or_name))
            )
            if device is not None:
                return device
            names = (await session.scalars(select(Device.name).order_by(Device.name).limit(20))).all()
        known = ", ".join(names) if names else "none registered yet"
        raise DeviceNotFound(f"no device with id or name {id_or_name!r}; known devices: {known}")

    async def list(self, *, environment: str | None = None, status: str | None = None) -> list[Device]:
        async with self.db.session() as session:
            query = select(Device).order_by(Device.name)
            if environment:
                query = query.where(Device.environment == environment)
            if status:
                query = query.where(Device.status == status)
            return list((await session.scalars(query)).all())

    async def add_credential(self, device_id: str, username: str, password: str,
                             *, generation: int = 1) -> None:
        ciphertext, key_id = self.keys.encrypt(password)
        async with self.db.session() as session:
            session.add(Credential(device_id=device_id, username=username, secret_ciphertext=ciphertext,
                                   key_id=key_id, generation=generation, active=True))

    async def login_username(self, device_id: str) -> str | None:
        """Return the username of the device's active credential, without decrypting anything."""
        async with self.db.session() as session:
            return await session.scalar(
                select(Credential.username)
                .where(Credential.device_id == device_id, Credential.active.is_(True))
                .order_by(Credential.generation.desc())
                .limit(1)
            )

    async def target(self, device: Device, settings: Settings) -> DeviceTarget:
        """Build a connection target with the device's active credential, decrypted."""
        async with self.db.session() as session:
            credential = await session.scalar(
                select(Credential)
                .where(Credential.device_id == device.id, Credential.active.is_(True))
                .order_by(Credential.generation.desc())
                .limit(1)
            )
        if credential is None:
            raise DeviceUnavailable(f"device {device.name} has no active credential; rotate or re-register it")
        return DeviceTarget(
            host=device.address,
            port=device.port,
            transport=device.transport,  # type: ignore[arg-type]
            username=credential.username,
            password=self.keys.decrypt(credential.secret_ciphertext, credential.key_id),
            tls_fingerprint=device.tls_fingerprint,
            # Without a pinned fingerprint the system CAs verify, unless the device opts out.
            tls_verify=bool(device.capabilities.get("tls_verify", True)),
            rest_tls=bool(device.capabilities.get("rest_tls", True)),
            encoding=device.capabilities.get("encoding", "utf-8"),
            connect_timeout=settings.routeros.connect_timeout,
            command_timeout=settings.routeros.command_timeout,
        )


class DeviceSessions:
    """Pooled device sessions for a process, keyed by device id."""

    def __init__(self, inventory: Inventory, settings: Settings) -> None:
        self.inventory = inventory
        self.settings = settings
        self.pool = DevicePool(max_per_device=settings.routeros.max_per_device)

    @asynccontextmanager
    async def session(self, device: Device) -> AsyncIterator[DeviceClient]:
        target = await self.inventory.target(device, self.settings)
        async with self.pool.session(device.id, target) as client:
            yield MeteredClient(client, device.name, device.transport)

    async def close(self) -> None:
        await self.pool.close()


async def enrol_device(
    inventory: Inventory,
    settings: Settings,
    *,
    name: str,
    address: str,
    port: int,
    transport: str,
    environment: str,
    username: str,
    password: str,
    tags: list[str] | None = None,
    capabilities: dict | None = None,
    tls_fingerprint: str | None = None,
) -> Device:
    """Store a device and its credential, read its identity and version, and mark it active.

    This is the direct path used by ``tikflow dev`` for its own simulated routers. Raises
    ``routeros.errors.DeviceError`` when the device cannot be reached with the credential; the
    device then stays ``pending`` with the reason.
    """
    from routeros.client import open_client

    device = Device(id=new_device_id(), name=name, address=address, port=port, transport=transport,
                    environment=environment, status="pending", tags=tags or [],
                    capabilities=capabilities or {}, tls_fingerprint=tls_fingerprint)
    async with inventory.db.session() as session:
        session.add(device)
    await inventory.add_credential(device.id, username, password)
    target = await inventory.target(device, settings)
    try:
        client = await open_client(target)
        try:
            resource = await client.get("/system/resource")
            identity = (await client.get("/system/identity")).get("name")
        finally:
            await client.close()
    except Exception as err:
        async with inventory.db.session() as session:
            row = await session.get(Device, device.id)
            row.status_reason = str(err)
        raise
    async with inventory.db.session() as session:
        row = await session.get(Device, device.id)
        row.status = "active"
        row.identity = identity
        row.version = resource.get("version")
        row.board = resource.get("board-name")
        row.facts = {"architecture": resource.get("architecture-name", "")}
    device.status = "active"
    return device
