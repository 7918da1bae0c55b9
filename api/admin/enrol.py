"""Bootstrap enrolment: one-time tokens that let a RouterOS script register its own device.

An operator creates a token (``POST /api/v1/enrolment-tokens``); ``tikflow devices
bootstrap-script`` prints a RouterOS script that creates a least-privilege group and service
account and then calls ``POST /api/v1/enrol`` with the token and the account it made. Only the
token's SHA-256 is stored. A token works once, before it expires, and is spent even when the
registration it carries is rejected, so a leaked token cannot be tried twice.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from sqlalchemy import select, update

from api.admin.devices import (
    DeviceRegistration,
    Environment,
    OperationStarted,
    TransportName,
    _audit,
    _check_flags,
    _check_name,
    _check_tags,
    _start,
    create_pending_device,
    device_public,
    json_body_of,
    validate_secret_body,
)
from api.deps import ServicesDep, require_role
from api.security import Principal
from storage.models import Device, EnrolmentToken
from workflows.device_lifecycle import DeviceRegisterWorkflow, register_workflow_id
from workflows.models import RegisterDeviceInput

router = APIRouter(tags=["enrolment"])

INVALID_TOKEN = ("enrolment token is invalid, already used or expired; create a new one with "
                 "`tikflow devices bootstrap-script`")


class EnrolmentTokenRequest(BaseModel):
    """The device a bootstrap script may register, fixed when the token is made."""

    model_config = ConfigDict(extra="forbid")

    name: str
    environment: Environment
    transport: TransportName = "api"
    address: str | None = Field(None, description="Management address; default: the caller's address")
    port: int | None = Field(None, ge=1, le=65535)
    tags: list[str] = Field(default_factory=list)
    capabilities: dict[str, bool | int | str] = Field(default_factory=dict)
    ttl_seconds: int = Field(3600, ge=60, le=86400, description="Seconds until the token expires")

    _name = field_validator("name")(_check_name)
    _tags = field_validator("tags")(_check_tags)
    _flags = field_validator("capabilities")(_check_flags)


class EnrolmentTokenCreated(BaseModel):
    id: str
    token: str = Field(description="Shown once; tikflow keeps only its SHA-256")
    expires_at: datetime


class EnrolRequest(BaseModel):
    """What the bootstrap script sends: the token and the account it created."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr
    username: str = Field(min_length=1, max_length=128)
    password: SecretStr
    address: str | None = None
    port: int | None = Field(None, ge=1, le=65535)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@router.post("/enrolment-tokens", status_code=status.HTTP_201_CREATED)
async def create_enrolment_token(
    body: EnrolmentTokenRequest, services: ServicesDep,
    principal: Annotated[Principal, Depends(require_role("operator", "admin"))],
) -> EnrolmentTokenCreated:
    """Create a one-time enrolment token for one device name; the token is shown only here."""
    async with services.db.session() as session:
        taken = await session.scalar(select(Device.id).where(Device.name == body.name))
        if taken is not None:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                detail=f"device name {body.name!r} is already taken")
        token = secrets.token_urlsafe(32)
        row = EnrolmentToken(
            id="enr-" + secrets.token_hex(5), token_sha256=token_digest(token), name=body.name,
            environment=body.environment, transport=body.transport, address=body.address,
            port=body.port, tags=body.tags, capabilities=body.capabilities,
            created_by=principal.subject,
            expires_at=datetime.now(UTC) + timedelta(seconds=body.ttl_seconds),
        )
        session.add(row)
    await _audit(services, principal, "enrolment_token.create", "ok", None,
                 body.model_dump() | {"token_id": row.id})
    return EnrolmentTokenCreated(id=row.id, token=token, expires_at=row.expires_at)


@router.post("/enrol", status_code=status.HTTP_202_ACCEPTED, response_model=OperationStarted,
             openapi_extra=json_body_of(EnrolRequest))
async def enrol(payload: Annotated[Any, Body()], request: Request,
                services: ServicesDep) -> OperationStarted:
    """Register the calling device with a one-time token instead of a bearer token."""
    body = validate_secret_body(EnrolRequest, payload)
    token = await _spend_token(services, body.token.get_secret_value())
    principal = Principal(subject=f"enrolment:{token.id}", issuer="tikflow-enrolment",
                          roles=frozenset({"operator"}), method="enrolment-token")
    address = token.address or body.address or (request.client.host if request.client else None)
    registration = validate_secret_body(DeviceRegistration, {
        "name": token.name, "address": address, "port": token.port or body.port,
        "transport": token.transport, "environment": token.environment, "tags": token.tags,
        "capabilities": token.capabilities, "username": body.username,
        "password": body.password.get_secret_value(),
    })
    arguments = registration.model_dump(exclude={"password", "password_ref"}) | {"token_id": token.id}
    device = await create_pending_device(services, registration, body.password.get_secret_value(),
                                         principal, arguments)
    async with services.db.session() as session:
        await session.execute(update(EnrolmentToken).where(EnrolmentToken.id == token.id)
                              .values(device_id=device.id))
    workflow_id = register_workflow_id(device.id)
    await _start(services, DeviceRegisterWorkflow.run,
                 RegisterDeviceInput(device_id=device.id, requested_by=principal.subject),
                 workflow_id, device, f"Enrol {device.name} ({device.address}:{device.port})")
    await _audit(services, principal, "device.enrol", "started", device.id, arguments,
                 workflow_id=workflow_id)
    return OperationStarted(device_id=device.id, workflow_id=workflow_id, device=device_public(device))


async def _spend_token(services: Any, token: str) -> EnrolmentToken:
    """Mark the token used and return it; 401 for an unknown, used or expired token."""
    now = datetime.now(UTC)
    async with services.db.session() as session:
        row = await session.scalar(select(EnrolmentToken)
                                   .where(EnrolmentToken.token_sha256 == token_digest(token)))
        if row is None or row.used_at is not None or _aware(row.expires_at) <= now:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=INVALID_TOKEN)
        # The guarded update makes the token single-use even when two requests race.
        spent = await session.execute(update(EnrolmentToken)
                                      .where(EnrolmentToken.id == row.id, EnrolmentToken.used_at.is_(None))
                                      .values(used_at=now))
        if spent.rowcount != 1:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=INVALID_TOKEN)
    return row


def _aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
