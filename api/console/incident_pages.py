"""The incident page: the global pause switch and the per-tool switches, with who and when."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from api.console.csrf import require_csrf
from api.console.web import AdminApiDep, UserDep, flash, render, root

router = APIRouter(prefix="/incident")


@router.get("")
async def incident_page(request: Request, user: UserDep, api: AdminApiDep) -> Response:
    """Show the pause switch, the tool switches and recent switch changes."""
    result = await api.get(user, "/incident")
    if not result.ok:
        raise HTTPException(result.status, detail=result.error_text())
    history = await api.get(user, "/audit", action="api:POST /api/v1/incident*", limit=20)
    return render(request, "incident.html", {
        "incident": result.body,
        "history": history.body.get("items", []) if history.ok else [],
        "history_error": None if history.ok else history.error_text(),
    })


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
