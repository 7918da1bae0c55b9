"""Prometheus metrics: counters in each process, and plan and incident state read from the database.

Plan outcomes, pending approvals and the incident pause are read from the database when
``/metrics`` is scraped, so every api replica reports the same numbers and nothing is lost when
a worker restarts.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select

from routeros.errors import DeviceError

TOOL_CALLS = Counter("tikflow_tool_calls_total", "MCP tool calls", ["tool", "result"])
TOOL_SECONDS = Histogram("tikflow_tool_call_seconds", "MCP tool call latency", ["tool"])
ROUTEROS_SECONDS = Histogram("tikflow_routeros_call_seconds", "RouterOS call latency",
                             ["device", "transport", "operation"])
ROUTEROS_ERRORS = Counter("tikflow_routeros_errors_total", "RouterOS call failures",
                          ["device", "transport", "error"])
PLANS = Gauge("tikflow_plans", "Plans by status (workflow outcome for finished plans)", ["status"])
ROLLBACKS = Gauge("tikflow_rollbacks", "Plans that ended rolled back")
PENDING_APPROVALS = Gauge("tikflow_pending_approvals", "Plans waiting for an approver")
INCIDENT_PAUSED = Gauge("tikflow_incident_paused", "1 while plan/apply is paused for an incident")
WORKFLOWS = Counter("tikflow_workflows_total", "Finished workflows seen by this process",
                    ["type", "outcome"])

_CLIENT_METHODS = ("print", "get", "add", "set", "remove", "command", "export")


async def refresh_database_gauges(db: Any) -> None:
    """Set the plan, approval and incident gauges from the database."""
    from storage.incident import is_paused
    from storage.models import Plan

    async with db.session() as session:
        counts = dict((await session.execute(select(Plan.status, func.count()).group_by(Plan.status))).all())
    for status in ("planned", "awaiting_approval", "applying", "rolling_back", "applied",
                   "rolled_back", "failed", "aborted", "needs_operator", *counts):
        PLANS.labels(status=status).set(counts.get(status, 0))
    ROLLBACKS.set(counts.get("rolled_back", 0))
    PENDING_APPROVALS.set(counts.get("awaiting_approval", 0))
    INCIDENT_PAUSED.set(1 if await is_paused(db) else 0)


class MeteredClient:
    """A device client whose calls are timed and whose failures are counted."""

    def __init__(self, client: Any, device: str, transport: str) -> None:
        self._client = client
        self._device = device
        self._transport = transport

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name not in _CLIENT_METHODS:
            return attribute

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                return await attribute(*args, **kwargs)
            except DeviceError as err:
                ROUTEROS_ERRORS.labels(self._device, self._transport, type(err).__name__).inc()
                raise
            finally:
                ROUTEROS_SECONDS.labels(self._device, self._transport, name).observe(
                    time.monotonic() - started)

        return timed
