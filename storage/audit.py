"""Append-only audit events, with secrets redacted from the recorded arguments."""

from __future__ import annotations

import re
from typing import Any

from storage.db import Database
from storage.models import AuditEvent

# Argument keys whose values are never stored: passwords, secrets, tokens, keys.
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|private|credential|^key$|-key$|authorization",
                         re.IGNORECASE)
REDACTED = "***"


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with the value of every secret-looking key replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


async def record_audit(
    db: Database,
    *,
    actor: str,
    action: str,
    result: str,
    arguments: dict[str, Any] | None = None,
    actor_issuer: str | None = None,
    role: str | None = None,
    device_ids: list[str] | None = None,
    plan_id: str | None = None,
    detail: str | None = None,
    duration_ms: int | None = None,
    request_id: str | None = None,
    workflow_id: str | None = None,
) -> None:
    """Append one audit event."""
    async with db.session() as session:
        session.add(
            AuditEvent(
                actor=actor,
                actor_issuer=actor_issuer,
                role=role,
                action=action,
                arguments=redact(arguments or {}),
                device_ids=device_ids or [],
                plan_id=plan_id,
                result=result,
                detail=detail[:2000] if detail else None,
                duration_ms=duration_ms,
                request_id=request_id,
                workflow_id=workflow_id,
            )
        )
