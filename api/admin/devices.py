"""Devices in the admin API: list, show, register, update, rotate credentials, decommission.

Registering stores the device and its encrypted credential first. Only then does it start the
``device-register`` workflow, with ids only. Rotation and decommission start their workflows
the same way. Every change is audited. No response, audit event or error contains a secret.

Roles: ``reader`` reads, ``operator`` registers, renames, retags and rotates, ``admin``
changes environment or capability flags and decommissions.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

import structlog
from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.devices import next_rotation_generation
from api.admin.audit import mark_audit_recorded
from api.deps import ServicesDep, require_role
from api.security import Principal
from api.services import Services
from inventory.secret_refs import SecretRefError, resolve_secret_ref
from routeros.target import DEFAULT_PORTS, normalize_fingerprint
from storage.audit import record_audit
from storage.models import Credential, Device, Snapshot
from workflows.device_lifecycle import (
    PHASE,
    CredentialRotateWorkflow,
    DeviceDecommissionWorkflow,
    DeviceRegisterWorkflow,
    decommission_workflow_id,
    register_workflow_id,
    rotate_workflow_id,
)
from workflows.models import (
    DecommissionInput,
    LifecycleProgress,
    LifecycleResult,
    RegisterDeviceInput,
    RotateCredentialsInput,
)
from workflows.plan_apply import DEVICE_IDS, ENVIRONMENT

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/devices", tags=["devices"])
ModelT = TypeVar("ModelT", bound=BaseModel)

Environment = Literal["lab", "staging", "prod"]
TransportName = Literal["api", "api-ssl", "rest", "ssh"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FLAG = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9.:-]{1,255}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("name must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


def _check_tags(value: list[str]) -> list[str]:
    for tag in value:
        if not _TAG.match(tag):
            raise ValueError(f"invalid tag {tag!r}: use letters, digits and . _ : / - (at most 64)")
    return sorted(set(value))


def _check_flags(value: dict[str, bool | int | str]) -> dict[str, bool | int | str]:
    for key in value:
        if not _FLAG.match(key):
            raise ValueError(f"invalid capability flag {key!r}: use lowercase letters, digits and _")
    return value


class DeviceRegistration(BaseModel):
    """Registration request: the device, where to reach it, and its credential."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Unique device name")
    address: str = Field(description="Management address: IP address or host name")
    port: int | None = Field(None, ge=1, le=65535, description="Service port; default per transport")
    transport: TransportName = Field(description="How tikflow talks to the device")
    environment: Environment
    tags: list[str] = Field(default_factory=list)
    capabilities: dict[str, bool | int | str] = Field(default_factory=dict,
                                                      description="Capability flags")
    tls_fingerprint: str | None = Field(None, description="SHA-256 of the device certificate to pin")
    username: str = Field(min_length=1, max_length=128)
    password: SecretStr | None = Field(None, description="The password, given once; or use password_ref")
    password_ref: str | None = Field(None, description="env:NAME or file:/path on the api host")

    _name = field_validator("name")(_check_name)
    _tags = field_validator("tags")(_check_tags)
    _flags = field_validator("capabilities")(_check_flags)

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        if not _ADDRESS.match(value):
            raise ValueError("address must be an IP address or host name without spaces")
        return value.lower()

    @field_validator("tls_fingerprint")
    @classmethod
    def _check_fingerprint(cls, value: str | None) -> str | None:
        return normalize_fingerprint(value) if value else None


class DeviceUpdate(BaseModel):
    """Metadata changes; environment and capability flags need the admin role."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    tags: list[str] | None = None
    environment: Environment | None = None
    capabilities: dict[str, bool | int | str] | None = None

    _name = field_validator("name")(lambda v: _check_name(v) if v is not None else v)
    _tags = field_validator("tags")(lambda v: _check_tags(v) if v is not None else v)
    _flags = field_validator("capabilities")(lambda v: _check_flags(v) if v is not None else v)


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Literal["same-user", "new-user"] = Field(
        "same-user", description="same-user: new password; new-user: a new service account")


class DecommissionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    remove_service_account: bool = Field(False, description="Also delete tikflow's account on the router")


class OperationStarted(BaseModel):
    device_id: str
    workflow_id: str
    device: dict[str, Any] | None = None


# -- views --------------------------------------------------------------------------------


def device_public(device: Device, credentials: list[Credential] | None = None) -> dict[str, Any]:
    """Return the device as the API shows it; credentials appear without their secret."""
    view: dict[str, Any] = {
        "id": device.id, "name": device.name, "address": device.address, "port": device.port,
        "transport": device.transport, "environment": device.environment, "status": device.status,
        "status_reason": device.status_reason, "tags": device.tags, "capabilities": device.capabilities,
        "tls_fingerprint": device.tls_fingerprint, "identity": device.identity,
        "version": device.version, "board": device.board, "facts": device.facts,
        "created_at": device.created_at.isoformat(), "updated_at": device.updated_at.isoformat(),
    }
    if credentials is not None:
        view["credentials"] = [
            {"username": c.username, "generation": c.generation, "state": c.state,
             "created_at": c.created_at.isoformat()}
            for c in credentials
        ]
    return view


async def load_device(services: Services, id_or_name: str) -> Device:
    """Return the device with this id or name, or raise 404 naming some known devices."""
    async with services.db.session() as session:
        device = await session.scalar(
            select(Device).where(or_(Device.id == id_or_name, Device.name == id_or_name)))
        if device is not None:
            return device
        names = (await session.scalars(select(Device.name).order_by(Device.name).limit(10))).all()
    known = ", ".join(names) if names else "none registered yet"
    raise HTTPException(status.HTTP_404_NOT_FOUND,
                        detail=f"no device with id or name {id_or_name!r}; known devices: {known}")


async def _credentials(services: Services, device_id: str) -> list[Credential]:
    async with services.db.session() as session:
        return list((await session.scalars(
            select(Credential).where(Credential.device_id == device_id)
            .order_by(Credential.generation))).all())


async def _audit(services: Services, principal: Principal, action: str, result: str,
                 device_id: str | None, arguments: dict[str, Any], detail: str | None = None,
                 workflow_id: str | None = None) -> None:
    # This event replaces the generic one the admin API middleware would write.
    mark_audit_recorded()
    await record_audit(services.db, actor=principal.subject, actor_issuer=principal.issuer,
                       role=",".join(sorted(principal.roles)), action=action, result=result,
                       arguments=arguments, device_ids=[device_id] if device_id else [],
                       detail=detail, workflow_id=workflow_id)


def _search_attributes(device: Device, phase: str) -> TypedSearchAttributes:
    return TypedSearchAttributes([
        SearchAttributePair(DEVICE_IDS, [device.id]),
        SearchAttributePair(ENVIRONMENT, device.environment),
        SearchAttributePair(PHASE, phase),
    ])


async def _start(services: Services, workflow_run: Any, argument: Any, workflow_id: str,
                 device: Device, summary: str,
                 reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE) -> None:
    """Start a lifecycle workflow; 409 when one with this id already ran or runs.

    Raises 503 when Temporal cannot be reached, after noting that on a pending device.
    """
    try:
        client = await services.temporal()
        await client.start_workflow(
            workflow_run, argument, id=workflow_id, task_queue=services.settings.temporal.task_queue,
            search_attributes=_search_attributes(device, "starting"), static_summary=summary,
            id_reuse_policy=reuse,
        )
    except WorkflowAlreadyStartedError:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"workflow {workflow_id} already exists; see its status") from None
    except (RPCError, RuntimeError) as err:
        log.warning("lifecycle workflow did not start", workflow_id=workflow_id, device_id=device.id,
                    error=str(err))
        detail = (f"workflow {workflow_id} did not start because Temporal at "
                  f"{services.settings.temporal.address} failed: {err}; retry once it is back")
        if device.status == "pending":
            await _set_reason(services, device.id, detail)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=detail) from None


async def _set_reason(services: Services, device_id: str, reason: str) -> None:
    async with services.db.session() as session:
        stored = await session.get(Device, device_id)
        if stored is not None:
            stored.status_reason = reason


# -- routes -------------------------------------------------------------------------------


@router.get("")
async def list_devices(
    services: ServicesDep, _: Annotated[Principal, Depends(require_role("reader", "operator", "admin"))],
    environment: Environment | None = None, status_: Annotated[str | None, Query(alias="status")] = None,
    tag: str | None = None,
) -> dict[str, Any]:
    """List devices by name, optionally filtered by environment, status and tag."""
    async with services.db.session() as session:
        query = select(Device).order_by(Device.name)
        if environment:
            query = query.where(Device.environment == environment)
        if status_:
            query = query.where(Device.status == status_)
        devices = (await session.scalars(query)).all()
    items = [device_public(d) for d in devices if tag is None or tag in d.tags]
    return {"items": items}


@router.get("/{device}")
async def show_device(device: str, services: ServicesDep,
                      _: Annotated[Principal, Depends(require_role("reader", "operator", "admin"))]
                      ) -> dict[str, Any]:
    """Show one device with its credential history (no secrets) and snapshot count."""
    row = await load_device(services, device)
    async with services.db.session() as session:
        snapshots = await session.scalar(select(func.count()).select_from(Snapshot)
                                         .where(Snapshot.device_id == row.id))
    return device_public(row, await _credentials(services, row.id)) | {"snapshots": snapshots}


def validate_secret_body(model: type[ModelT], payload: Any) -> ModelT:
    """Validate a request body that contains a secret; 422 errors never echo the input.

    FastAPI's own validation errors carry the rejected input, which for a missing field is the
    whole body, password included, so these routes validate the body themselves.
    """
    try:
        return model.model_validate(payload)
    except ValidationError as err:
        problems = [{"loc": ["body", *error["loc"]], "msg": error["msg"], "type": error["type"]}
                    for error in err.errors(include_input=False, include_url=False)]
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problems) from None


def json_body_of(model: type[BaseModel]) -> dict[str, Any]:
    """Return ``openapi_extra`` that documents ``model`` as the JSON request body."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=OperationStarted,
             openapi_extra=json_body_of(DeviceRegistration))
async def register_device(payload: Annotated[Any, Body()], services: ServicesDep,
                          principal: Annotated[Principal, Depends(require_role("operator", "admin"))]
                          ) -> OperationStarted:
    """Store the device as pending with its credential encrypted, then start its registration."""
    body = validate_secret_body(DeviceRegistration, payload)
    password = _password_of(body)
    arguments = body.model_dump(exclude={"password", "password_ref"}) | {
        "password_ref": body.password_ref}
    device = await create_pending_device(services, body, password, principal, arguments)
    workflow_id = register_workflow_id(device.id)
    await _start(services, DeviceRegisterWorkflow.run,
                 RegisterDeviceInput(device_id=device.id, requested_by=principal.subject),
                 workflow_id, device, f"Register {device.name} ({device.address}:{device.port})")
    await _audit(services, principal, "device.register", "started", device.id, arguments,
                 workflow_id=workflow_id)
    return OperationStarted(device_id=device.id, workflow_id=workflow_id, device=device_public(device))


def _password_of(body: DeviceRegistration) -> str:
    if (body.password is None) == (body.password_ref is None):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail="give exactly one of password or password_ref")
    if body.password is not None:
        if not body.password.get_secret_value():
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="password is empty")
        return body.password.get_secret_value()
    try:
        return resolve_secret_ref(body.password_ref or "")
    except SecretRefError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None


async def create_pending_device(services: Services, body: DeviceRegistration, password: str,
                                principal: Principal, arguments: dict[str, Any]) -> Device:
    """Insert the device (``pending``) and its encrypted credential; 409 on a taken name or address."""
    from inventory.devices import new_device_id

    port = body.port or DEFAULT_PORTS[body.transport]
    async with services.db.session() as session:
        clash = await session.scalar(select(Device).where(
            or_(Device.name == body.name, (Device.address == body.address) & (Device.port == port))))
        if clash is not None:
            detail = (f"device name {body.name!r} is already taken" if clash.name == body.name else
                      f"{body.address}:{port} is already registered as {clash.name!r} "
                      f"(status {clash.status}); update or decommission that device instead")
            await _audit(services, principal, "device.register", "rejected", None, arguments, detail)
            raise HTTPException(status.HTTP_409_CONFLICT, detail=detail)
        device = Device(id=new_device_id(), name=body.name, address=body.address, port=port,
                        transport=body.transport, environment=body.environment, status="pending",
                        status_reason="registration running", tags=body.tags,
                        capabilities=body.capabilities, tls_fingerprint=body.tls_fingerprint,
                        facts={})
        session.add(device)
        ciphertext, key_id = services.inventory.keys.encrypt(password)
        try:
            await session.flush()
        except IntegrityError:
            # Another request registered the same name or address between the check and here.
            raise HTTPException(status.HTTP_409_CONFLICT,
                                detail=f"{body.name!r} or {body.address}:{port} was registered "
                                       "at the same moment; list devices and retry") from None
        session.add(Credential(device_id=device.id, username=body.username,
                               secret_ciphertext=ciphertext, key_id=key_id, active=True,
                               state="active", generation=1))
    return device


class RegistrationRetry(BaseModel):
    """A new attempt at registering a pending device, optionally with a new credential."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(None, min_length=1, max_length=128)
    password: SecretStr | None = None
    password_ref: str | None = Field(None, description="env:NAME or file:/path on the api host")


@router.post("/{device}/retry-registration", status_code=status.HTTP_202_ACCEPTED,
             response_model=OperationStarted, openapi_extra=json_body_of(RegistrationRetry))
async def retry_registration(device: str, services: ServicesDep,
                             principal: Annotated[Principal, Depends(require_role("operator", "admin"))],
                             payload: Annotated[Any, Body()] = None) -> OperationStarted:
    """Run the registration of a pending device again, after fixing the password or the network."""
    body = validate_secret_body(RegistrationRetry, payload or {})
    row = await load_device(services, device)
    if row.status != "pending":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"device {row.name} is {row.status}; only pending devices register again")
    workflow_id = register_workflow_id(row.id)
    if await _workflow_status(await services.temporal(), workflow_id) == WorkflowExecutionStatus.RUNNING:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"{workflow_id} is still running")
    replaced = body.password is not None or body.password_ref is not None
    if replaced:
        await _replace_credential(services, row, body)
    elif body.username is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail="a new username needs a password or password_ref too")
    await _start(services, DeviceRegisterWorkflow.run,
                 RegisterDeviceInput(device_id=row.id, requested_by=principal.subject),
                 workflow_id, row, f"Register {row.name} again",
                 reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
    await _audit(services, principal, "device.register", "retried", row.id,
                 {"new_credential": replaced, "username": body.username}, workflow_id=workflow_id)
    return OperationStarted(device_id=row.id, workflow_id=workflow_id)


async def _replace_credential(services: Services, device: Device, body: RegistrationRetry) -> None:
    """Store the new credential as the active one; earlier ones become ``failed``."""
    registration = DeviceRegistration.model_construct(password=body.password,
                                                      password_ref=body.password_ref)
    password = _password_of(registration)
    credentials = await _credentials(services, device.id)
    username = body.username or (credentials[-1].username if credentials else None)
    if username is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="missing username")
    ciphertext, key_id = services.inventory.keys.encrypt(password)
    async with services.db.session() as session:
        for credential in credentials:
            stored = await session.get(Credential, credential.id)
            if stored.state in ("active", "pending"):
                stored.state, stored.active = "failed", False
        session.add(Credential(device_id=device.id, username=username, secret_ciphertext=ciphertext,
                               key_id=key_id, active=True, state="active",
                               generation=max((c.generation for c in credentials), default=0) + 1))


@router.patch("/{device}")
async def update_device(device: str, body: DeviceUpdate, services: ServicesDep,
                        principal: Annotated[Principal, Depends(require_role("operator", "admin"))]
                        ) -> dict[str, Any]:
    """Change name or tags (operator), environment or capability flags (admin); audited."""
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail="nothing to change: give name, tags, environment or capabilities")
    privileged = sorted({"environment", "capabilities"} & set(changes))
    if privileged and "admin" not in principal.roles:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"changing {' and '.join(privileged)} needs the admin role")
    row = await load_device(services, device)
    async with services.db.session() as session:
        if "name" in changes and changes["name"] != row.name:
            taken = await session.scalar(select(Device.id).where(Device.name == changes["name"]))
            if taken is not None:
                raise HTTPException(status.HTTP_409_CONFLICT,
                                    detail=f"device name {changes['name']!r} is already taken")
        stored = await session.get(Device, row.id)
        before = {key: getattr(stored, key) for key in changes}
        for key, value in changes.items():
            setattr(stored, key, value)
    await _audit(services, principal, "device.update", "ok", row.id,
                 {"before": before, "after": changes})
    updated = await load_device(services, row.id)
    return device_public(updated, await _credentials(services, row.id))


@router.post("/{device}/rotate-credentials", status_code=status.HTTP_202_ACCEPTED,
             response_model=OperationStarted)
async def rotate_credentials(device: str, services: ServicesDep,
                             principal: Annotated[Principal, Depends(require_role("operator", "admin"))],
                             body: RotateRequest | None = None) -> OperationStarted:
    """Start a credential rotation; one at a time per device."""
    body = body or RotateRequest()
    row = await load_device(services, device)
    if row.status != "active":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"device {row.name} is {row.status}; only active devices rotate credentials")
    generation = await _next_generation(services, row)
    workflow_id = rotate_workflow_id(row.id, generation)
    await _start(services, CredentialRotateWorkflow.run,
                 RotateCredentialsInput(device_id=row.id, generation=generation, policy=body.policy,
                                        requested_by=principal.subject),
                 workflow_id, row, f"Rotate credentials of {row.name} ({body.policy})")
    await _audit(services, principal, "device.rotate_credentials", "started", row.id,
                 {"policy": body.policy, "generation": generation}, workflow_id=workflow_id)
    return OperationStarted(device_id=row.id, workflow_id=workflow_id)


@router.post("/{device}/decommission", status_code=status.HTTP_202_ACCEPTED,
             response_model=OperationStarted)
async def decommission_device(device: str, services: ServicesDep,
                              principal: Annotated[Principal, Depends(require_role("admin"))],
                              body: DecommissionRequest | None = None) -> OperationStarted:
    """Mark the device inactive and optionally remove tikflow's account; audit and snapshots stay."""
    body = body or DecommissionRequest()
    row = await load_device(services, device)
    if row.status == "inactive":
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"device {row.name} is already inactive")
    # A rotation that is still running could re-enable the account this would remove.
    await _next_generation(services, row)
    workflow_id = decommission_workflow_id(row.id)
    await _start(services, DeviceDecommissionWorkflow.run,
                 DecommissionInput(device_id=row.id, remove_service_account=body.remove_service_account,
                                   requested_by=principal.subject),
                 workflow_id, row, f"Decommission {row.name}")
    await _audit(services, principal, "device.decommission", "started", row.id,
                 body.model_dump(), workflow_id=workflow_id)
    return OperationStarted(device_id=row.id, workflow_id=workflow_id)


@router.get("/{device}/operations")
async def list_operations(device: str, services: ServicesDep,
                          _: Annotated[Principal, Depends(require_role("reader", "operator", "admin"))]
                          ) -> dict[str, Any]:
    """List the device's lifecycle workflows with their status, oldest first."""
    row = await load_device(services, device)
    generations = [c.generation for c in await _credentials(services, row.id) if c.generation > 1]
    ids = [register_workflow_id(row.id), *(rotate_workflow_id(row.id, g) for g in generations),
           decommission_workflow_id(row.id)]
    client = await services.temporal()
    items = [op for op in [await _operation(client, row.id, wid) for wid in ids] if op is not None]
    return {"items": items}


@router.get("/{device}/operations/{workflow_id}")
async def show_operation(device: str, workflow_id: str, services: ServicesDep,
                         _: Annotated[Principal, Depends(require_role("reader", "operator", "admin"))]
                         ) -> dict[str, Any]:
    """Show one lifecycle workflow of the device: status, phase, detail and result."""
    row = await load_device(services, device)
    if not workflow_id.endswith(f":{row.id}") and f":{row.id}:" not in workflow_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"workflow {workflow_id} does not belong to device {row.name}")
    operation = await _operation(await services.temporal(), row.id, workflow_id)
    if operation is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"workflow {workflow_id} does not exist")
    return operation


async def _next_generation(services: Services, device: Device) -> int:
    """Return the generation of the device's next rotation; 409 while a rotation runs."""
    credentials = await _credentials(services, device.id)
    stored_max = max((c.generation for c in credentials), default=0)
    generation = await next_rotation_generation(await services.temporal(), device.id, stored_max)
    if generation is None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"a credential rotation of {device.name} is running; wait for it "
                                   "or follow it with `tikflow devices show`")
    return generation


async def _workflow_status(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return description.status


async def _operation(client: Client, device_id: str, workflow_id: str) -> dict[str, Any] | None:
    handle: WorkflowHandle = client.get_workflow_handle(workflow_id, result_type=LifecycleResult)
    try:
        description = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    state = description.status.name.lower() if description.status else "unknown"
    view: dict[str, Any] = {"workflow_id": workflow_id, "type": description.workflow_type,
                            "state": state, "started_at": description.start_time.isoformat()}
    if description.status == WorkflowExecutionStatus.RUNNING:
        try:
            progress = await handle.query("progress", result_type=LifecycleProgress)
        except (RPCError, WorkflowQueryFailedError):
            # No worker has picked the workflow up yet, so nothing can respond to the query.
            return view | {"status": "running", "phase": "starting", "detail": "waiting for a worker"}
        view |= {"status": progress.status, "phase": progress.phase, "detail": progress.detail}
    elif description.status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result()
        view |= {"status": result.status, "phase": "done", "detail": result.detail}
    else:
        view |= {"status": state, "phase": "done", "detail": f"workflow {state}"}
    return view
