"""Incident controls in the admin API: the global plan/apply pause and per-tool switches."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from api.deps import PrincipalDep, ServicesDep, require_role
from api.plan_actions import ActionRejected, incident_status, set_incident_pause, set_tool_switch
from api.security import Principal

router = APIRouter(prefix="/incident", tags=["incident"])
Operator = Annotated[Principal, Depends(require_role("operator", "admin"))]


class Reason(BaseModel):
    reason: str | None = None


@router.get("")
async def read_incident(services: ServicesDep, _: PrincipalDep) -> dict[str, Any]:
    """Return whether plan/apply is paused and which tools are off, with who changed them and when."""
    return await incident_status(services)


@router.post("/pause")
async def pause(services: ServicesDep, principal: Operator, body: Reason | None = None) -> dict[str, Any]:
    """Pause every running plan at its next step boundary and refuse new applies."""
    return await set_incident_pause(services, principal, paused=True, reason=body.reason if body else None)


@router.post("/resume")
async def resume(services: ServicesDep, principal: Operator, body: Reason | None = None) -> dict[str, Any]:
    """Release the pause; paused plans continue."""
    return await set_incident_pause(services, principal, paused=False, reason=body.reason if body else None)


@router.post("/tools/{tool}/disable")
async def disable_tool(tool: str, services: ServicesDep, principal: Operator,
                       body: Reason | None = None) -> dict[str, Any]:
    """Switch an MCP tool off for every caller at once; ``tier:apply`` switches a whole risk tier."""
    try:
        return await set_tool_switch(services, principal, tool, disabled=True,
                                     reason=body.reason if body else None)
    except ActionRejected as err:
        raise HTTPException(err.status_code, detail=str(err)) from None


@router.post("/tools/{tool}/enable")
async def enable_tool(tool: str, services: ServicesDep, principal: Operator,
                      body: Reason | None = None) -> dict[str, Any]:
    """Switch an MCP tool, or a ``tier:<name>`` risk tier, back on."""
    try:
        return await set_tool_switch(services, principal, tool, disabled=False,
                                     reason=body.reason if body else None)
    except ActionRejected as err:
        raise HTTPException(err.status_code, detail=str(err)) from None
