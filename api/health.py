"""Liveness, readiness, version and Prometheus metrics."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.plan_actions import incident_status
from storage.migrate import migration_check
from tikflow.metrics import refresh_database_gauges
from tikflow.version import __version__

log = structlog.get_logger(__name__)

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Report readiness: the database is reachable, migrations are not behind, Temporal is reachable."""
    services = request.app.state.services
    checks: dict[str, str] = {}
    try:
        async with services.db.session() as session:
            revision = await session.scalar(text("SELECT version_num FROM alembic_version"))
        checks["database"] = "ok"
        checks["migrations"] = migration_check(revision)
    except Exception as err:  # noqa: BLE001 - readiness reports any failure as not ready
        checks["database"] = f"unavailable: {type(err).__name__}"
    try:
        client = await asyncio.wait_for(services.temporal(), timeout=5)
        await asyncio.wait_for(client.service_client.check_health(), timeout=5)
        checks["temporal"] = "ok"
    except Exception as err:  # noqa: BLE001
        checks["temporal"] = f"unavailable: {type(err).__name__}"
    ready = all(value == "ok" for value in checks.values())
    body: dict = {"ready": ready, "checks": checks}
    if checks.get("database") == "ok" and checks.get("migrations") == "ok":
        # Shown, not gated on: a paused plan/apply is a deliberate state, not an outage.
        status = await incident_status(services)
        body["incident"] = {"paused": status["paused"], "disabled_tools": status["disabled_tools"]}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/version")
async def version(request: Request) -> dict[str, str | bool | None]:
    """The running version, the git commit when known, and the newest release when checked."""
    from tikflow.commands.version_cmds import git_sha

    status = request.app.state.update_status
    return {"version": __version__, "git_sha": git_sha(), "latest": status.latest,
            "update_available": status.update_available, "release_url": status.url}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics; plan and incident gauges are read from the database on each scrape."""
    try:
        await refresh_database_gauges(request.app.state.services.db)
    except Exception as err:  # noqa: BLE001 - a scrape must not fail because the database is down
        log.warning("metrics: database gauges not refreshed", error=type(err).__name__)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
