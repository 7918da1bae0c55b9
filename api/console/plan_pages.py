"""Plan pages: list and filter, one plan's diff, risk, approvals and live rollout progress.

Actions (apply, approve, pause, resume, abort) are the admin API's plan routes, and the API
decides who may do what. The page shows only the buttons that the user's roles, the access
matrix and the plan's state allow, so most refusals never happen.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from api.admin.plans import read_plan
from api.authz import tool_access
from api.console.csrf import require_csrf
from api.console.web import AdminApiDep, UserDep, flash, render, root, services_of
from api.security import Principal

router = APIRouter(prefix="/plans")

STATUSES = ("planned", "queued", "awaiting_approval", "applying", "rolling_back", "applied",
            "rolled_back", "failed", "aborted", "needs_operator")
RISKS = ("low", "medium", "high")
# Roles the plan routes of the admin API accept for each action. The API also checks the plan
# hash, the four-eyes rule, the environment and the plan's state.
ACTION_ROLES = {
    "apply": {"operator", "admin"},
    "approve": {"approver", "admin"},
    "pause": {"operator", "admin"},
    "resume": {"operator", "admin"},
    "abort": {"operator", "admin"},
}
# Plan states in which each action makes sense; a paused plan offers resume instead of pause.
RUNNING = {"queued", "awaiting_approval", "applying"}
ACTION_STATES = {
    "apply": {"planned"},
    "approve": {"awaiting_approval"},
    "pause": RUNNING,
    "resume": RUNNING,
    "abort": RUNNING,
}
CREATE_ROLES = {"operator", "admin"}
CHANGES_EXAMPLE = json.dumps([{"device": "core-1", "path": "/ip/address", "action": "add",
                               "values": {"address": "192.0.2.1/24", "interface": "bridge-lan"}}],
                             indent=2)
ACTION_DONE = {"apply": "Apply started.", "approve": "Approved.", "pause": "Rollout paused.",
               "resume": "Rollout resumed.", "abort": "Abort requested."}
LIST_LIMIT = 200
# Seconds one progress poll may take before it returns 504 and the page polls again.
POLL_TIMEOUT = 10.0


@router.get("")
async def plans_page(request: Request, user: UserDep, api: AdminApiDep, status: str | None = None,
                     risk: str | None = None, q: str | None = None) -> Response:
    """List plans, newest first, filtered by status, risk and text in description or author.

    NOTE: the API filters by status only, so the risk and text filters narrow the newest
    ``LIST_LIMIT`` plans of that status, not every plan.
    """
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
        "statuses": STATUSES, "risks": RISKS, "limit": LIST_LIMIT,
        "can_create": bool(CREATE_ROLES & user.roles)})


@router.get("/new")
async def new_plan_page(request: Request, user: UserDep) -> Response:
    """Show the form that creates a plan from a list of changes."""
    return render(request, "plan_new.html", {
        "form": {"changes": CHANGES_EXAMPLE, "on_failure": "rollback_batch"}, "error": None})


@router.post("/new", dependencies=[Depends(require_csrf)])
async def create_plan(request: Request, user: UserDep, api: AdminApiDep) -> Response:
    """Create a plan through the admin API; nothing changes on a device until it is applied."""
    form = {key: str(value).strip() for key, value in (await request.form()).items()
            if key != "csrf_token"}
    body, error = _plan_body(form)
    if body is not None:
        result = await api.post(user, "/plans", body)
        if result.ok:
            flash(request, "Plan created. Review the diff, then apply it.", "success")
            return RedirectResponse(f"{root(request)}/plans/{quote(result.body['plan_id'], safe='')}",
                                    status_code=303)
        error = result.error_text()
    return render(request, "plan_new.html", {"form": form, "error": error}, status_code=422)


def _plan_body(form: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """Return the create-plan request built from the form, or why it cannot be built."""
    if not form.get("description"):
        return None, "description: describe what the plan changes and why"
    try:
        changes = json.loads(form.get("changes") or "[]")
    except ValueError as err:
        return None, f"changes: not valid JSON ({err}); give a list of change objects"
    if not isinstance(changes, list) or not changes:
        return None, "changes: give a non-empty JSON list of change objects"
    rollout: dict[str, Any] = {"on_failure": form.get("on_failure") or "rollback_batch"}
    for key in ("canary", "batch_size", "max_parallel"):
        value = form.get(key, "")
        if value:
            if not value.isdigit():
                return None, f"{key}: give a whole number or leave it empty"
            rollout[key] = int(value)
    return {"description": form["description"], "changes": changes, "rollout": rollout}, None


@router.get("/{plan_id}")
async def plan_page(request: Request, plan_id: str, user: UserDep, api: AdminApiDep) -> Response:
    """Show a plan: per-device diff, risk reasons, approvals, progress and actions."""
    result = await api.get(user, f"/plans/{quote(plan_id, safe='')}")
    if not result.ok:
        raise HTTPException(result.status, detail=result.error_text())
    plan = result.body
    allowed = _allowed_actions(request, user, plan)
    view = _progress_view(plan)
    return render(request, "plan.html", {
        "plan": plan, "progress": view, "allowed": allowed,
        "available": set(view["actions"])})


@router.get("/{plan_id}/progress.json")
async def plan_progress(request: Request, plan_id: str, user: UserDep) -> JSONResponse:
    """Return status, approvals, batches and steps of a plan; the plan page polls it.

    The page polls every two seconds, so this calls the admin API's read function directly
    instead of sending a request that the API would audit each time. That route admits any
    signed-in caller, and every console user is one.
    """
    try:
        async with asyncio.timeout(POLL_TIMEOUT):
            plan = await read_plan(plan_id, services_of(request), user)
    except HTTPException as err:
        return JSONResponse({"error": err.detail}, status_code=err.status_code)
    except TimeoutError:
        # The live progress is a Temporal query, which waits until a worker handles it.
        return JSONResponse({"error": f"no progress within {POLL_TIMEOUT:.0f} s; the worker may "
                                      "be busy or down"}, status_code=504)
    return JSONResponse(_progress_view(plan), headers={"cache-control": "no-store"})


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
    for field in ("note", "reason"):
        text = str(form.get(field, "")).strip()
        if text:
            body[field] = text[:500]
    result = await api.post(user, f"/plans/{quote(plan_id, safe='')}/{action}", body)
    if result.ok:
        flash(request, ACTION_DONE[action], "success")
    else:
        flash(request, f"{action.capitalize()} failed: {result.error_text()}", "error")
    return RedirectResponse(f"{root(request)}/plans/{quote(plan_id, safe='')}", status_code=303)


def _allowed_actions(request: Request, user: Principal, plan: dict[str, Any]) -> set[str]:
    """Return the actions the user's roles permit on this plan, environments included.

    The plan routes check the ``apply`` tier of the access matrix in every environment the
    plan touches, on top of the roles in ``ACTION_ROLES``.
    """
    matrix = tool_access(services_of(request)).matrix
    if not all(matrix.allows(user.roles, "apply", env) for env in plan.get("environments", [])):
        return set()
    return {action for action, roles in ACTION_ROLES.items() if roles & user.roles}


def _progress_view(plan: dict[str, Any]) -> dict[str, Any]:
    """Return what the plan page shows live: status, batches, steps, approvers and actions.

    The workflow's live progress wins over the stored plan row while the plan runs.
    """
    progress = plan.get("progress") or {}
    names = {d.get("device_id"): d.get("device_name") for d in plan.get("diff", [])}
    status = progress.get("status") or plan["status"]
    paused = bool(progress.get("paused"))
    steps = [step | {"device": names.get(step.get("device_id")) or step.get("device_id")}
             for step in progress.get("steps") or plan.get("steps") or []]
    batches = [batch | {"devices": [names.get(d) or d for d in batch.get("device_ids", [])]}
               for batch in progress.get("batches") or []]
    return {
        "status": status, "phase": progress.get("phase"),
        "detail": progress.get("detail") or plan.get("status_detail"),
        "paused": paused, "batches": batches, "steps": steps,
        "approved_by": list(progress.get("approved_by") or []),
        "actions": _available_actions(status, paused),
    }


def _available_actions(status: str, paused: bool) -> list[str]:
    """Return the actions that make sense for a plan in ``status``."""
    available = [action for action, states in ACTION_STATES.items() if status in states]
    hidden = "pause" if paused else "resume"
    return [action for action in available if action != hidden]
