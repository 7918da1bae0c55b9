"""The incident page: the global pause switch and the per-tool switches, with who and when."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from api.catalog import ToolEntry, registered_catalog
from api.console.admin_client import ApiResult
from api.console.csrf import require_csrf
from api.console.web import AdminApiDep, UserDep, flash, render, root
from storage.incident import TOOL_PREFIX

router = APIRouter(prefix="/incident")


@dataclass(frozen=True)
class ToolRow:
    """One MCP tool on the incident page with its switch state."""

    name: str
    title: str
    tier: str
    disabled: bool
    by_configuration: bool
    changed_by: str | None
    changed_at: str | None
    reason: str | None


@cache
def _catalog() -> list[ToolEntry]:
    return registered_catalog().entries()


def tool_rows(incident: dict[str, Any]) -> list[ToolRow]:
    """Return every registered tool with its switch, plus switched tools no longer registered."""
    switches = {s["key"].removeprefix(TOOL_PREFIX): s for s in incident.get("tool_switches", [])}
    disabled = set(incident.get("disabled_tools", []))
    configured = set(incident.get("disabled_by_configuration", []))
    known = {entry.name: (entry.title, entry.tier) for entry in _catalog()}
    rows = []
    for name in sorted(known.keys() | switches.keys() | disabled):
        title, tier = known.get(name, ("not registered", "–"))
        switch = switches.get(name, {})
        rows.append(ToolRow(name=name, title=title, tier=tier, disabled=name in disabled,
                            by_configuration=name in configured,
                            changed_by=switch.get("changed_by"), changed_at=switch.get("changed_at"),
                            reason=switch.get("reason")))
    return rows


@router.get("")
async def incident_page(request: Request, user: UserDep, api: AdminApiDep) -> Response:
    """Show the pause switch, the tool switches and recent switch changes."""
    result = await api.get(user, "/incident")
    if not result.ok:
        raise HTTPException(result.status, detail=result.error_text())
    history = await api.get(user, "/audit", action="api:POST /api/v1/incident*", limit=20)
    return render(request, "incident.html", {
        "incident": result.body, "pause": result.body.get("pause") or {},
        "tools": tool_rows(result.body),
        "history": history.body.get("items", []) if history.ok else [],
        "history_error": None if history.ok else _history_error(history),
    })


def _history_error(result: ApiResult) -> str:
    if result.status == 403:
        return ("Your roles cannot read the audit trail; the latest change of each switch is "
                "shown above.")
    return result.error_text()


@router.post("/pause", dependencies=[Depends(require_csrf)])
async def pause_all(request: Request, user: UserDep, api: AdminApiDep) -> Response:
    """Pause all plan and apply work, with a reason."""
    form = await request.form()
    reason = str(form.get("reason", "")).strip()
    if not reason:
        flash(request, "Not paused: give a reason, for example the incident ticket.", "error")
    else:
        result = await api.post(user, "/incident/pause", {"reason": reason[:500]})
        _flash(request, result.ok, "Plan and apply work is paused.", result.error_text)
    return RedirectResponse(f"{root(request)}/incident", status_code=303)


@router.post("/resume", dependencies=[Depends(require_csrf)])
async def resume_all(request: Request, user: UserDep, api: AdminApiDep) -> Response:
    """Lift the global pause."""
    result = await api.post(user, "/incident/resume", {})
    _flash(request, result.ok, "Plan and apply work resumed.", result.error_text)
    return RedirectResponse(f"{root(request)}/incident", status_code=303)


@router.post("/tools/{name}/{switch}", dependencies=[Depends(require_csrf)])
async def switch_tool(request: Request, name: str, switch: str, user: UserDep,
                      api: AdminApiDep) -> Response:
    """Disable or enable one MCP tool."""
    if switch not in ("disable", "enable"):
        raise HTTPException(404, detail=f"unknown tool switch {switch!r}; use disable or enable")
    form = await request.form()
    body = {"reason": str(form.get("reason", "")).strip()[:500]} if form.get("reason") else {}
    result = await api.post(user, f"/incident/tools/{quote(name, safe='')}/{switch}", body)
    _flash(request, result.ok, f"Tool {name} {switch}d.", result.error_text)
    return RedirectResponse(f"{root(request)}/incident", status_code=303)


def _flash(request: Request, ok: bool, success: str, error_text: Callable[[], str]) -> None:
    flash(request, success if ok else f"Failed: {error_text()}", "success" if ok else "error")
