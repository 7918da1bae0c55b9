"""Plan pages: list and filter, one plan's diff, risk, approvals and live rollout progress.

Actions (apply, approve, pause, resume, abort) are the admin API's plan routes; the API
decides who may do what, and the page only hides buttons the user's roles can never use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.console.csrf import require_csrf
from api.console.web import AdminApiDep, UserDep, flash, render, root

router = APIRouter(prefix="/plans")

STATUSES = ("planned", "awaiting_approval", "approved", "applying", "paused", "applied",
            "rolling_back", "rolled_back", "failed", "aborted", "needs_operator")
RISKS = ("low", "medium", "high", "critical")
# Roles that can ever use each action; the API still checks plan hash, environment and state.
ACTION_ROLES = {
    "apply": {"operator", "approver", "admin"},
    "approve": {"approver", "admin"},
    "pause": {"operator", "approver", "admin"},
    "resume": {"operator", "approver", "admin"},
    "abort": {"operator", "approver", "admin"},
}
ACTION_DONE = {"apply": "Apply started.", "approve": "Approved.", "pause": "Rollout paused.",
               "resume": "Rollout resumed.", "abort": "Abort requested."}
LIST_LIMIT = 200


@router.get("")
async def plans_page(request: Request, user: UserDep, api: AdminApiDep, status: str | None = None,
                     risk: str | None = None, q: str | None = None) -> Response:
    """List plans, newest first, filtered by status, risk and text in description or author."""
    result = await api.get(user, "/plans", status=status, limit=LIST_LIMIT)
    if not result.ok:
        raise HTTPException(result.status, detail=result.error_text())
    plans = result.body["items"]
    if risk:
        plans = [p for p in plans if p["risk"] == risk]
    if q:
        needle = q.casefold()
        plans = [p for p in plans if needle in p["description"].casefold()
                 or needle in p["author"].casefold() or needle in p["id"]]
    return render(request, "plans.html", {
        "plans": plans, "filters": {"status": status or "", "risk": risk or "", "q": q or ""},
        "statuses": STATUSES, "risks": RISKS, "limit": LIST_LIMIT})


@router.get("/{plan_id}")
async def plan_page(request: Request, plan_id: str, user: UserDep, api: AdminApiDep) -> Response:
    """Show a plan: per-device diff, risk reasons, approvals, progress and actions."""
    result = await api.get(user, f"/plans/{quote(plan_id, safe='')}")
    if not result.ok:
        raise HTTPException(result.status, detail=result.error_text())
    plan = result.body
    allowed = {action for action, roles in ACTION_ROLES.items() if roles & user.roles}
    return render(request, "plan.html", {
        "plan": plan, "progress": plan.get("progress") or {}, "allowed": allowed,
        "approvals": _approvals(plan)})


@router.get("/{plan_id}/progress.json")
async def plan_progress(plan_id: str, user: UserDep, api: AdminApiDep) -> JSONResponse:
    """Return status, approvals, batches and steps of a plan; the plan page polls it."""
    result = await api.get(user, f"/plans/{quote(plan_id, safe='')}")
    if not result.ok:
        return JSONResponse({"error": result.error_text()}, status_code=result.status)
    plan = result.body
    progress = plan.get("progress") or {}
    return JSONResponse({
        "status": progress.get("status") or plan["status"],
        "phase": progress.get("phase"),
        "detail": progress.get("detail") or plan.get("status_detail"),
        "paused": bool(progress.get("paused")),
        "batches": progress.get("batches") or [],
        "steps": progress.get("steps") or plan.get("steps") or [],
        "approved_by": _approvals(plan),
    }, headers={"cache-control": "no-store"})


@router.post("/{plan_id}/{action}", dependencies=[Depends(require_csrf)])
async def plan_action(request: Request, plan_id: str, action: str, user: UserDep,
                      api: AdminApiDep) -> Response:
    """Apply, approve, pause, resume or abort the plan through the admin API."""
    if action not in ACTION_ROLES:
        raise HTTPException(404, detail=f"unknown plan action {action!r}; use one of: "
                                        f"{', '.join(ACTION_ROLES)}")
    form = await request.form()
    body: dict[str, Any] = {}
    if action in ("apply", "approve"):
        body["plan_hash"] = str(form.get("plan_hash", ""))
    reason = str(form.get("reason", "")).strip()
    if reason:
        body["reason"] = reason[:500]
    result = await api.post(user, f"/plans/{quote(plan_id, safe='')}/{action}", body)
    if result.ok:
        flash(request, ACTION_DONE[action], "success")
    else:
        flash(request, f"{action.capitalize()} failed: {result.error_text()}", "error")
    return RedirectResponse(f"{root(request)}/plans/{quote(plan_id, safe='')}", status_code=303)


def _approvals(plan: dict[str, Any]) -> list[Any]:
    """Return the plan's approvals from the API: its own list, else the workflow's approvers."""
    if isinstance(plan.get("approvals"), list):
        return plan["approvals"]
    progress = plan.get("progress") or {}
    return [{"approver": name} for name in progress.get("approved_by", [])]
