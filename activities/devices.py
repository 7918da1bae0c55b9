"""Activities of the device lifecycle workflows: register, rotate credentials, decommission.

Workflow inputs carry device and credential ids only. These activities read the encrypted
secret from the database, decrypt it in memory for one connection, and never return, log or
raise it. Device failures leave as ``ApplicationError`` whose ``type`` is the
``routeros.errors`` class name and whose message tells an operator what to fix.

Credential rotation keeps one rule: the new secret is stored (encrypted, state ``pending``)
before it is set on the router, so tikflow holds every secret the router may accept at any
moment. ``reconcile_credentials`` is the compensation: it logs in with the old and the new
credential and keeps exactly one that works.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy import func, select, update
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from routeros.client import DeviceClient, open_client
from routeros.errors import (
    AuthenticationFailed,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    PermissionDenied,
    TlsVerificationFailed,
)
from routeros.target import DeviceTarget
from storage.audit import record_audit
from storage.crypto import KeyRing
from storage.db import Database
from storage.models import Credential, Device, Snapshot
from tikflow.settings import Settings
from workflows.models import (
    CredentialCheck,
    CredentialRef,
    DecommissionInput,
    DeviceFacts,
    DeviceRef,
    DeviceStatusUpdate,
    EnvironmentRotationInput,
    HealthReport,
    LifecycleAuditInput,
    LifecycleResult,
    PendingCredential,
    RotateCredentialsInput,
    RotationTarget,
    RotationTargets,
    SnapshotRef,
    SnapshotRequest,
)

log = structlog.get_logger(__name__)

# The /ip/service entry that serves each transport; REST is served by www-ssl (or www).
SERVICE_OF_TRANSPORT = {"api": "api", "api-ssl": "api-ssl", "rest": "www-ssl", "ssh": "ssh"}
ROTATION_POLICIES = ("same-user", "new-user")
# Accounts tikflow never disables or removes, whatever the policy: losing them locks people out.
PROTECTED_USERS = frozenset({"admin"})
HIGH_CPU_LOAD = 95
LOW_FREE_MEMORY = 8 * 1024 * 1024
PORT_PROBE_TIMEOUT = 2.0
_GENERATION_SUFFIX = re.compile(r"-g\d+$")
RUNNING = WorkflowExecutionStatus.RUNNING


def operator_message(err: DeviceError, target: DeviceTarget) -> str:
    """Explain a device failure in terms an operator can act on; the password never appears."""
    where = target.describe()
    if isinstance(err, AuthenticationFailed):
        return (
            f"login to {where} was rejected: the password is wrong, the user does not exist or "
            "is disabled, or its group lacks the 'api' (or 'rest-api'/'ssh') policy; RouterOS "
            "gives the same answer for all of these"
        )
    if isinstance(err, PermissionDenied):
        return (
            f"{where}: the user's group lacks a policy tikflow needs (read, write, policy, "
            f"test, sensitive); add it with /user group set: {err.message}"
        )
    if isinstance(err, TlsVerificationFailed):
        return f"TLS verification failed for {where}: {err.message}"
    if isinstance(err, DeviceUnreachable | DeviceTimeout):
        service = SERVICE_OF_TRANSPORT[target.transport]
        return (
            f"{where} is unreachable: {err.message}; check the address and port, the firewall, "
            f"and that '/ip service {service}' is enabled"
        )
    return f"{where}: {err.message}"


def as_application_error(err: DeviceError, target: DeviceTarget) -> ApplicationError:
    """Carry a device error to the workflow with the operator's wording and its retry decision."""
    return ApplicationError(operator_message(err, target), type=type(err).__name__,
                            non_retryable=not err.retryable)


def not_found(what: str) -> ApplicationError:
    return ApplicationError(f"{what} does not exist", type="DeviceNotFound", non_retryable=True)


def next_username(username: str, generation: int) -> str:
    """Return the service account name for a new-user rotation: ``tikflow`` → ``tikflow-g2``."""
    return f"{_GENERATION_SUFFIX.sub('', username)}-g{generation}"


def generate_router_password() -> str:
    """Return a random 32-character password made of characters RouterOS scripts need no quoting for."""
    return secrets.token_urlsafe(24)


class DeviceLifecycleActivities:
    """Every side effect of the lifecycle workflows, on the database and on the router."""

    def __init__(self, db: Database, keys: KeyRing, settings: Settings) -> None:
        self.db = db
        self.keys = keys
        self.settings = settings

    # -- loading ----------------------------------------------------------------------

    async def _device(self, device_id: str) -> Device:
        async with self.db.session() as session:
            device = await session.get(Device, device_id)
        if device is None:
            raise not_found(f"device {device_id}")
        return device

    async def _credential(self, credential_id: int) -> Credential:
        async with self.db.session() as session:
            credential = await session.get(Credential, credential_id)
        if credential is None:
            raise not_found(f"credential {credential_id}")
        return credential

    async def _active_credential(self, device_id: str) -> Credential:
        async with self.db.session() as session:
            credential = await session.scalar(
                select(Credential)
                .where(Credential.device_id == device_id, Credential.state == "active")
                .order_by(Credential.generation.desc())
                .limit(1)
            )
        if credential is None:
            raise ApplicationError(f"device {device_id} has no active credential",
                                   type="NoActiveCredential", non_retryable=True)
        return credential

    def _target(self, device: Device, credential: Credential) -> DeviceTarget:
        return DeviceTarget(
            host=device.address,
            port=device.port,
            transport=device.transport,  # type: ignore[arg-type]
            username=credential.username,
            password=self.keys.decrypt(credential.secret_ciphertext, credential.key_id),
            tls_fingerprint=device.tls_fingerprint,
            tls_verify=device.tls_fingerprint is not None,
            rest_tls=bool(device.capabilities.get("rest_tls", True)),
            encoding=device.capabilities.get("encoding", "utf-8"),
            connect_timeout=self.settings.routeros.connect_timeout,
            command_timeout=self.settings.routeros.command_timeout,
        )

    @asynccontextmanager
    async def _connect(self, device: Device, credential: Credential) -> AsyncIterator[DeviceClient]:
        """Open a fresh session (never pooled, so a login is really tried) with ``credential``."""
        target = self._target(device, credential)
        try:
            client = await open_client(target)
        except DeviceError as err:
            raise as_application_error(err, target) from None
        try:
            yield client
        except DeviceError as err:
            raise as_application_error(err, target) from None
        finally:
            await client.close()

    # -- registration -----------------------------------------------------------------

    @activity.defn
    async def probe_device(self, ref: DeviceRef) -> DeviceFacts:
        """Log in and read identity, version, board, uptime, device-mode and open transports."""
        device = await self._device(ref.device_id)
        credential = await self._active_credential(ref.device_id)
        async with self._connect(device, credential) as client:
            resource = await client.get("/system/resource")
            identity = (await client.get("/system/identity")).get("name", "")
            device_mode = await _read_device_mode(client)
            services = await client.print("/ip/service")
        transports = await _probe_transports(device, services)
        return DeviceFacts(
            identity=identity,
            version=resource.get("version", ""),
            board=resource.get("board-name", ""),
            uptime=resource.get("uptime", ""),
            device_mode=device_mode,
            transports=transports,
        )

    @activity.defn
    async def check_health(self, ref: DeviceRef) -> HealthReport:
        """Read CPU load and free memory; a busy or memory-starved device fails the check."""
        device = await self._device(ref.device_id)
        credential = await self._active_credential(ref.device_id)
        async with self._connect(device, credential) as client:
            resource = await client.get("/system/resource")
        cpu_load = _as_int(resource.get("cpu-load"))
        free_memory = _as_int(resource.get("free-memory"))
        problems = []
        if cpu_load is not None and cpu_load >= HIGH_CPU_LOAD:
            problems.append(f"CPU load is {cpu_load}% (limit {HIGH_CPU_LOAD}%)")
        if free_memory is not None and free_memory < LOW_FREE_MEMORY:
            problems.append(f"free memory is {free_memory} bytes (minimum {LOW_FREE_MEMORY})")
        return HealthReport(ok=not problems, problems=problems, cpu_load=cpu_load,
                            free_memory=free_memory)

    @activity.defn
    async def take_snapshot(self, request: SnapshotRequest) -> SnapshotRef:
        """Store the device's terse export (secrets hidden) as a configuration snapshot."""
        device = await self._device(request.device_id)
        credential = await self._active_credential(request.device_id)
        async with self._connect(device, credential) as client:
            export_text = await client.export(terse=True, show_sensitive=False)
        digest = hashlib.sha256(export_text.encode("utf-8", "surrogateescape")).hexdigest()
        async with self.db.session() as session:
            snapshot = Snapshot(device_id=device.id, reason=request.reason, export_text=export_text,
                                sha256=digest)
            session.add(snapshot)
            await session.flush()
            snapshot_id = snapshot.id
        return SnapshotRef(snapshot_id=snapshot_id, sha256=digest)

    @activity.defn
    async def record_device_status(self, update_: DeviceStatusUpdate) -> None:
        """Store the device's status, the reason, and the facts registration read."""
        async with self.db.session() as session:
            device = await session.get(Device, update_.device_id)
            if device is None:
                raise not_found(f"device {update_.device_id}")
            device.status = update_.status
            device.status_reason = update_.reason
            if update_.facts is not None:
                facts = update_.facts
                device.identity = facts.identity
                device.version = facts.version
                device.board = facts.board
                device.facts = {**device.facts, "uptime": facts.uptime,
                                "device_mode": facts.device_mode, "transports": facts.transports}
        log.info("device status recorded", device_id=update_.device_id, status=update_.status)

    @activity.defn
    async def record_lifecycle_audit(self, event: LifecycleAuditInput) -> None:
        """Append the outcome of a lifecycle workflow to the audit log."""
        await record_audit(self.db, actor=event.actor, action=event.action, result=event.result,
                           device_ids=[event.device_id], detail=event.detail,
                           workflow_id=activity.info().workflow_id)

    # -- credential rotation ----------------------------------------------------------

    @activity.defn
    async def prepare_credential(self, request: RotateCredentialsInput) -> PendingCredential:
        """Store a new random secret as a ``pending`` credential; a retry reuses the same row."""
        if request.policy not in ROTATION_POLICIES:
            raise ApplicationError(
                f"invalid rotation policy {request.policy!r}: use {' or '.join(ROTATION_POLICIES)}",
                type="InvalidValue", non_retryable=True)
        await self._device(request.device_id)
        old = await self._active_credential(request.device_id)
        if request.policy == "same-user" and old.username in PROTECTED_USERS:
            raise ApplicationError(
                f"tikflow logs in as the built-in {old.username!r} account; a new password for it "
                "would lock people out, so rotate with the new-user policy instead",
                type="InvalidValue", non_retryable=True)
        async with self.db.session() as session:
            pending = await session.scalar(select(Credential).where(
                Credential.device_id == request.device_id,
                Credential.generation == request.generation))
            if pending is None:
                username = (old.username if request.policy == "same-user"
                            else next_username(old.username, request.generation))
                ciphertext, key_id = self.keys.encrypt(generate_router_password())
                pending = Credential(device_id=request.device_id, username=username,
                                     secret_ciphertext=ciphertext, key_id=key_id, active=False,
                                     state="pending", generation=request.generation)
                session.add(pending)
                await session.flush()
            elif pending.state != "pending":
                raise ApplicationError(
                    f"credential generation {request.generation} of {request.device_id} is "
                    f"already {pending.state}; start a new rotation",
                    type="AlreadyExists", non_retryable=True)
            pending_id, username = pending.id, pending.username
        return PendingCredential(device_id=request.device_id, credential_id=pending_id,
                                 username=username, old_credential_id=old.id,
                                 old_username=old.username, policy=request.policy)

    @activity.defn
    async def install_credential(self, pending: PendingCredential) -> None:
        """Set the pending secret on the router, logged in with the old credential."""
        device = await self._device(pending.device_id)
        old = await self._credential(pending.old_credential_id)
        new = await self._credential(pending.credential_id)
        password = self.keys.decrypt(new.secret_ciphertext, new.key_id)
        async with self._connect(device, old) as client:
            if pending.policy == "same-user":
                user_id = await _user_id(client, pending.username)
                await client.set("/user", user_id, {"password": password})
                return
            old_rows = await client.print("/user", where={"name": pending.old_username})
            group = old_rows[0].get("group", "full") if old_rows else "full"
            existing = await client.print("/user", where={"name": pending.username},
                                          proplist=[".id"])
            if existing:
                await client.set("/user", existing[0][".id"], {"password": password,
                                                               "disabled": "false"})
            else:
                await client.add("/user", {"name": pending.username, "group": group,
                                           "password": password,
                                           "comment": "tikflow service account"})

    @activity.defn
    async def check_credential(self, ref: CredentialRef) -> CredentialCheck:
        """Log in with one stored credential and read the identity.

        A rejected login is a result (``works=False``); transport faults raise and are retried,
        so the answer is never a guess made while the device was unreachable.
        """
        credential = await self._credential(ref.credential_id)
        device = await self._device(credential.device_id)
        try:
            async with self._connect(device, credential) as client:
                await client.get("/system/identity")
        except ApplicationError as err:
            if err.type in ("AuthenticationFailed", "PermissionDenied"):
                log.info("credential does not log in", credential_id=ref.credential_id,
                         device_id=credential.device_id, error_type=err.type)
                return CredentialCheck(credential_id=ref.credential_id, works=False,
                                       reason=err.message)
            raise
        return CredentialCheck(credential_id=ref.credential_id, works=True)

    @activity.defn
    async def activate_credential(self, pending: PendingCredential) -> None:
        """Make the proven credential the active one and retire the old one, in one transaction."""
        async with self.db.session() as session:
            await _set_state(session, pending.old_credential_id, "retired")
            await _set_state(session, pending.credential_id, "active")

    @activity.defn
    async def disable_old_credential(self, pending: PendingCredential) -> str:
        """Disable the old account on the router (new-user policy) with the new credential.

        Same-user rotation has nothing left to do: the new password already replaced the old
        one on the router. Returns what was done, for the audit log.
        """
        if pending.policy == "same-user":
            return "the old password no longer works on the router"
        if pending.old_username in PROTECTED_USERS:
            return f"left the built-in {pending.old_username!r} account enabled; tikflow no longer uses it"
        device = await self._device(pending.device_id)
        new = await self._credential(pending.credential_id)
        async with self._connect(device, new) as client:
            rows = await client.print("/user", where={"name": pending.old_username},
                                      proplist=[".id"])
            if rows:
                await client.set("/user", rows[0][".id"], {"disabled": "true"})
        return f"disabled the old account {pending.old_username!r} on the router"

    @activity.defn
    async def reconcile_credentials(self, pending: PendingCredential) -> LifecycleResult:
        """Compensate a failed rotation: keep exactly one working credential that tikflow holds.

        The old credential wins when it still works (a new account is then removed again);
        otherwise the new one is kept when it works. When neither logs in, nothing is changed
        and ``NoWorkingCredential`` is raised for an operator.
        """
        old_works = (await self.check_credential(CredentialRef(
            credential_id=pending.old_credential_id))).works
        new_works = (await self.check_credential(CredentialRef(
            credential_id=pending.credential_id))).works
        if old_works:
            if new_works and pending.policy == "new-user":
                await self._remove_user(pending.device_id, pending.old_credential_id,
                                        pending.username)
            async with self.db.session() as session:
                await _set_state(session, pending.credential_id, "failed")
                await _set_state(session, pending.old_credential_id, "active")
            return LifecycleResult(device_id=pending.device_id, status="rolled_back",
                                   detail="kept the old credential; the new one was discarded")
        if new_works:
            async with self.db.session() as session:
                await _set_state(session, pending.old_credential_id, "retired")
                await _set_state(session, pending.credential_id, "active")
            return LifecycleResult(device_id=pending.device_id, status="rotated",
                                   detail="the old credential stopped working; kept the new one")
        raise ApplicationError(
            f"neither the old nor the new credential of {pending.device_id} logs in; set a "
            "known password on the router and store it with a new registration",
            type="NoWorkingCredential", non_retryable=True)

    async def _remove_user(self, device_id: str, credential_id: int, username: str) -> None:
        device = await self._device(device_id)
        credential = await self._credential(credential_id)
        async with self._connect(device, credential) as client:
            rows = await client.print("/user", where={"name": username}, proplist=[".id"])
            if rows:
                await client.remove("/user", [rows[0][".id"]])

    # -- scheduled rotation -----------------------------------------------------------

    @activity.defn
    async def list_rotation_targets(self, request: EnvironmentRotationInput) -> RotationTargets:
        """Return the active devices of an environment with the generation each rotates to.

        A device whose rotation is still running is left out of this round.
        """
        async with self.db.session() as session:
            rows = (await session.execute(
                select(Device.id, func.max(Credential.generation))
                .join(Credential, Credential.device_id == Device.id)
                .where(Device.environment == request.environment, Device.status == "active")
                .group_by(Device.id).order_by(Device.id))).all()
        targets = []
        for device_id, stored_max in rows:
            generation = await next_rotation_generation(activity.client(), device_id, stored_max or 0)
            if generation is not None:
                targets.append(RotationTarget(device_id=device_id, generation=generation))
        return RotationTargets(items=targets)

    # -- decommission -----------------------------------------------------------------

    @activity.defn
    async def remove_service_account(self, request: DecommissionInput) -> str:
        """Remove tikflow's account from the router; returns what was done for the audit log."""
        credential = await self._active_credential(request.device_id)
        if credential.username in PROTECTED_USERS:
            return f"kept the built-in {credential.username!r} account on the router"
        await self._remove_user(request.device_id, credential.id, credential.username)
        return f"removed the account {credential.username!r} from the router"

    @activity.defn
    async def retire_credentials(self, ref: DeviceRef) -> None:
        """Retire every credential of a decommissioned device; the rows stay for the audit trail."""
        async with self.db.session() as session:
            await session.execute(
                update(Credential)
                .where(Credential.device_id == ref.device_id,
                       Credential.state.in_(("active", "pending")))
                .values(state="retired", active=False)
            )


async def next_rotation_generation(client: Client, device_id: str, stored_max: int) -> int | None:
    """Return the first credential generation no rotation workflow has used, or None while one runs.

    A rotation that failed before storing its credential leaves no row behind, so the stored
    generations alone would hand out its number, and its workflow id, a second time.
    """
    generation = stored_max + 1
    if await _workflow_status(client, f"credential-rotate:{device_id}:{stored_max}") == RUNNING:
        return None
    while True:
        workflow_status = await _workflow_status(client, f"credential-rotate:{device_id}:{generation}")
        if workflow_status == RUNNING:
            return None
        if workflow_status is None:
            return generation
        generation += 1


async def _workflow_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return description.status


def activities_of(handler: DeviceLifecycleActivities) -> list:
    """Return the activity callables a worker registers for the lifecycle workflows."""
    return [
        handler.probe_device,
        handler.check_health,
        handler.take_snapshot,
        handler.record_device_status,
        handler.record_lifecycle_audit,
        handler.prepare_credential,
        handler.install_credential,
        handler.check_credential,
        handler.activate_credential,
        handler.disable_old_credential,
        handler.reconcile_credentials,
        handler.remove_service_account,
        handler.retire_credentials,
        handler.list_rotation_targets,
    ]


async def _set_state(session, credential_id: int, state: str) -> None:
    credential = await session.get(Credential, credential_id)
    if credential is not None:
        credential.state = state
        credential.active = state == "active"


async def _user_id(client: DeviceClient, username: str) -> str:
    rows = await client.print("/user", where={"name": username}, proplist=[".id"])
    if not rows:
        raise ApplicationError(f"user {username!r} does not exist on the router",
                               type="ItemNotFound", non_retryable=True)
    return rows[0][".id"]


async def _read_device_mode(client: DeviceClient) -> dict[str, str]:
    """Return ``/system/device-mode`` (RouterOS 7.13 and later); empty where it does not exist."""
    try:
        return await client.get("/system/device-mode")
    except DeviceError as err:
        if err.retryable:
            raise
        return {}


async def _probe_transports(device: Device, services: list[dict[str, str]]) -> dict[str, str]:
    """Report per transport whether its service is disabled, or its port accepts TCP connections."""
    by_name = {row.get("name"): row for row in services}
    result: dict[str, str] = {}
    for transport, service in SERVICE_OF_TRANSPORT.items():
        if transport == device.transport:
            result[transport] = "open"
            continue
        row = by_name.get(service)
        if row is None or row.get("disabled") in ("true", "yes"):
            result[transport] = "disabled"
            continue
        port = _as_int(row.get("port"))
        result[transport] = "open" if port and await _port_open(device.address, port) else "closed"
    return result


async def _port_open(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PORT_PROBE_TIMEOUT)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


def _as_int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
