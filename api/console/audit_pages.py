"""The audit page: the admin API's audit query with its filters, a text search and paging."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from api.console.web import AdminApiDep, UserDep, render

router = APIRouter(prefix="/audit")

PAGE_SIZE = 100
FILTERS = ("actor", "action", "plan", "device", "result", "since", "until")
RESULTS = ("ok", "started", "denied", "rejected", "rate_limited", "error", "device_error")


@router.get("")
async def audit_page(request: Request, user: UserDep, api: AdminApiDep, q: str | None = None,
                     before_id: int | None = None) -> Response:
    """List audit events, newest first, filtered like ``/api/v1/audit`` plus a text search.

    The text search runs over the page the API returned, so it narrows one page of
    ``PAGE_SIZE`` events. The filters narrow the whole trail.
    """
    filters = {key: (request.query_params.get(key) or "").strip() for key in FILTERS}
    result = await api.get(user, "/audit", limit=PAGE_SIZE, before_id=before_id, **filters)
    if result.status == 422:
        return render(request, "audit.html", {
            "events": [], "filters": filters, "q": q or "", "results": RESULTS,
            "error": result.error_text(), "next_before_id": None}, status_code=422)
    if not result.ok:
        raise HTTPException(result.status, detail=result.error_text())
    events = result.body["items"]
    if q:
        needle = q.casefold()
        events = [e for e in events if needle in _searchable(e)]
    return render(request, "audit.html", {
        "events": events, "filters": filters, "q": q or "", "results": RESULTS, "error": None,
        "next_before_id": result.body.get("next_before_id")})


def _searchable(event: dict[str, Any]) -> str:
    parts = [event.get("actor"), event.get("action"), event.get("detail"), event.get("plan_id"),
             event.get("workflow_id"), json.dumps(event.get("arguments"), ensure_ascii=False),
             " ".join(event.get("device_ids") or [])]
    return " ".join(str(p) for p in parts if p).casefold()
