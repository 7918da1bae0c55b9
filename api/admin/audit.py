"""The audit trail in the admin API: query, JSON-lines export, and auditing of ``/api/v1`` itself.

``AuditAdminRequests`` is an ASGI middleware that writes exactly one audit event per admin
API request, whatever the outcome (401 and 429 included), just before the last response byte.
A route that writes its own, more specific event sets ``request.state.audit_recorded = True``
and the middleware then writes none, so the request still has exactly one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

import structlog
from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import String, cast, or_, select
from sqlalchemy.sql import Select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ServicesDep, require_role
from api.security import Principal
from storage.audit import record_audit
from storage.db import Database
from storage.models import AuditEvent, Device

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/audit", tags=["audit"])

AUDIT_READERS = ("admin", "approver")
MAX_PAGE = 1000
EXPORT_BATCH = 500
# Request bodies larger than this are not copied into the audit row.
MAX_AUDITED_BODY = 65_536


@dataclass(frozen=True)
class AuditFilter:
    """Filters shared by ``/api/v1/audit``, its export and ``tikflow audit``."""

    actor: str | None = None
    action: str | None = None
    plan: str | None = None
    device: str | None = None
    # Other spellings of ``device`` (its id when a name was given), filled by ``resolved``.
    device_aliases: tuple[str, ...] = ()
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        """Return ``query`` narrowed by every filter that is set."""
        if self.actor:
            query = query.where(AuditEvent.actor == self.actor)
        if self.action:
            # A trailing * matches a prefix, e.g. "tool:*" or "api:*".
            if self.action.endswith("*"):
                query = query.where(AuditEvent.action.startswith(self.action[:-1], autoescape=True))
            else:
                query = query.where(AuditEvent.action == self.action)
        if self.plan:
            query = query.where(AuditEvent.plan_id == self.plan)
        if self.device:
            # device_ids is a JSON array of strings; match the quoted id inside its text form.
            text = cast(AuditEvent.device_ids, String)
            query = query.where(or_(*(text.contains(json.dumps(key), autoescape=True)
                                      for key in (self.device, *self.device_aliases))))
        if self.result:
            query = query.where(AuditEvent.result == self.result)
        if self.since:
            query = query.where(AuditEvent.at >= _utc(self.since))
        if self.until:
            query = query.where(AuditEvent.at < _utc(self.until))
        return query

    async def resolved(self, db: Database) -> AuditFilter:
        """Return this filter with the device's id added when ``device`` names a device."""
        if not self.device:
            return self
        async with db.session() as session:
            found = await session.scalar(select(Device).where(
                or_(Device.id == self.device, Device.name == self.device)))
        if found is None or found.id == self.device:
            return self
        return replace(self, device_aliases=(found.id,))


def _utc(value: datetime) -> datetime:
    # Naive times are taken as UTC. SQLite stores timestamps as text without an offset, so a
    # comparison is only right once both sides are UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def event_public(event: AuditEvent) -> dict[str, Any]:
    """Return the JSON form of one audit event."""
    return {
        "id": event.id,
        "at": _utc(event.at).isoformat(),
        "actor": event.actor,
        "actor_issuer": event.actor_issuer,
        "role": event.role,
        "action": event.action,
        "arguments": event.arguments,
        "device_ids": event.device_ids,
        "plan_id": event.plan_id,
        "result": event.result,
        "detail": event.detail,
        "duration_ms": event.duration_ms,
        "request_id": event.request_id,
        "workflow_id": event.workflow_id,
    }


async def query_audit(db: Database, filters: AuditFilter, *, limit: int = 100,
                      before_id: int | None = None) -> list[AuditEvent]:
    """Return up to ``limit`` events matching ``filters``, newest first, older than ``before_id``."""
    filters = await filters.resolved(db)
    query = filters.apply(select(AuditEvent)).order_by(AuditEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    async with db.session() as session:
        return list((await session.scalars(query)).all())


async def iter_audit(db: Database, filters: AuditFilter) -> AsyncIterator[AuditEvent]:
    """Yield every matching event, oldest first, reading in batches (keyset pagination)."""
    filters = await filters.resolved(db)
    after_id = 0
    while True:
        query = (filters.apply(select(AuditEvent)).where(AuditEvent.id > after_id)
                 .order_by(AuditEvent.id).limit(EXPORT_BATCH))
        async with db.session() as session:
            batch = list((await session.scalars(query)).all())
        for event in batch:
            yield event
        if len(batch) < EXPORT_BATCH:
            return
        after_id = batch[-1].id


def _filters(actor: str | None = None, action: str | None = None, plan: str | None = None,
             device: str | None = None, result: str | None = None,
             since: datetime | None = Query(None, description="ISO 8601 time, inclusive"),
             until: datetime | None = Query(None, description="ISO 8601 time, exclusive")) -> AuditFilter:
    return AuditFilter(actor=actor, action=action, plan=plan, device=device, result=result,
                       since=since, until=until)


FilterDep = Annotated[AuditFilter, Depends(_filters)]
AuditReader = Annotated[Principal, Depends(require_role(*AUDIT_READERS))]


@router.get("")
async def list_audit(services: ServicesDep, _: AuditReader, filters: FilterDep,
                     limit: int = Query(100, ge=1, le=MAX_PAGE),
                     before_id: int | None = Query(None, ge=1, description="Cursor: next_before_id "
                                                   "of the previous page")) -> dict[str, Any]:
    """List audit events, newest first; follow ``next_before_id`` for the next page."""
    events = await query_audit(services.db, filters, limit=limit, before_id=before_id)
    next_before = events[-1].id if len(events) == limit else None
    return {"items": [event_public(e) for e in events], "next_before_id": next_before}


@router.get("/export")
async def export_audit(services: ServicesDep, _: AuditReader, filters: FilterDep) -> StreamingResponse:
    """Export every matching audit event as JSON lines, oldest first."""

    async def lines() -> AsyncIterator[bytes]:
        async for event in iter_audit(services.db, filters):
            yield (json.dumps(event_public(event), ensure_ascii=False) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"content-disposition": 'attachment; filename="audit.jsonl"'})


_REQUEST_STATE: ContextVar[dict[str, Any] | None] = ContextVar("tikflow_request_state", default=None)


def mark_audit_recorded() -> None:
    """Tell the middleware that this request wrote its own, more specific audit event."""
    state = _REQUEST_STATE.get()
    if state is not None:
        state["audit_recorded"] = True


class AuditAdminRequests:
    """ASGI middleware writing one audit event per ``/api/v1`` request."""

    def __init__(self, app: ASGIApp, *, prefix: str = "/api/v1") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        # Read now: an app mounted further in (the MCP app at "/") replaces scope["app"].
        services = scope["app"].state.services
        request_id = _request_id(scope)
        status = 500
        body = bytearray()
        recorded = False

        async def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                await self._record(services, scope, status, bytes(body), request_id,
                                   int((time.monotonic() - started) * 1000))

        async def capture_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(body) <= MAX_AUDITED_BODY:
                body.extend(message.get("body", b""))
            return message

        async def capture_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Written before the last byte goes out, so a client that has the response
                # can already find the event.
                await record()
            await send(message)

        token = _REQUEST_STATE.set(scope.setdefault("state", {}))
        try:
            await self.app(scope, capture_receive, capture_send)
        finally:
            _REQUEST_STATE.reset(token)
            await record()

    async def _record(self, services: Any, scope: Scope, status: int, body: bytes,
                      request_id: str, duration_ms: int) -> None:
        state = scope.get("state", {})
        if state.get("audit_recorded"):
            return
        principal = state.get("principal")
        path_params = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
        template = _route_template(scope["path"], path_params)
        arguments: dict[str, Any] = {"path": path_params, "query": _query(scope)}
        if body and len(body) <= MAX_AUDITED_BODY:
            arguments["body"] = _json_or_size(body)
        try:
            await record_audit(
                services.db,
                actor=principal.subject if principal else "anonymous",
                actor_issuer=principal.issuer if principal else None,
                role=principal.role_label if principal else None,
                action=f"api:{scope['method']} {template}",
                arguments=arguments,
                result=_result_of(status),
                detail=f"HTTP {status}",
                duration_ms=duration_ms,
                request_id=request_id,
                plan_id=path_params.get("plan_id"),
                device_ids=[path_params[key] for key in ("device_id", "device") if key in path_params],
            )
        except Exception:
            # The response has started, so it cannot fail any more; a lost audit row must be loud.
            log.exception("admin request audit failed", request_id=request_id, path=scope["path"])


def _route_template(path: str, path_params: dict[str, str]) -> str:
    """Return ``path`` with path parameter values replaced by ``{name}``, so actions group well."""
    names = {value: name for name, value in path_params.items()}
    return "/".join(f"{{{names[unquote(part)]}}}" if unquote(part) in names else part
                    for part in path.split("/"))


def _result_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status in (401, 403):
        return "denied"
    if status == 429:
        return "rate_limited"
    return "rejected" if status < 500 else "error"


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if 0 < len(text) <= 64 and text.replace("-", "").isalnum():
                return text
    return uuid.uuid4().hex[:16]


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return dict(parse_qsl(raw, keep_blank_values=True))


def _json_or_size(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"bytes": len(body)}
