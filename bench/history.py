"""Where a rollout's wall time goes, read from its Temporal workflow history.

Each activity leaves three events: scheduled (the workflow requested it), started (a worker
picked it up) and completed. Temporal calls the gaps schedule-to-start, the wait for Temporal
and a free worker slot, and start-to-close, the activity itself: device round trips and
database work. What a phase takes beyond its activities is workflow-task time between them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

PREFLIGHT_ACTIVITY = "snapshot_and_check"
APPLY_ACTIVITY = "apply_change"
GATE_ACTIVITY = "verify_applied"


@dataclass(frozen=True)
class ActivitySpan:
    """One completed activity: its type and its event times in seconds since the epoch."""

    name: str
    scheduled: float
    started: float
    completed: float


def activity_spans(events: Iterable[HistoryEvent]) -> list[ActivitySpan]:
    """Pair each completed activity's scheduled, started and completed events.

    Activities that failed or timed out have no completed event and are left out.
    """
    scheduled: dict[int, tuple[str, float]] = {}
    started: dict[int, float] = {}
    spans: list[ActivitySpan] = []
    for event in events:
        seconds = event.event_time.ToNanoseconds() / 1e9
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = (name, seconds)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = seconds
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            scheduled_id = event.activity_task_completed_event_attributes.scheduled_event_id
            name, scheduled_at = scheduled[scheduled_id]
            spans.append(ActivitySpan(name=name, scheduled=scheduled_at,
                                      started=started.get(scheduled_id, scheduled_at),
                                      completed=seconds))
    return spans


def activity_timing(spans: list[ActivitySpan]) -> dict[str, dict[str, Any]]:
    """Return per activity type: count, median schedule-to-start and start-to-close in ms."""
    names = sorted({span.name for span in spans})
    timing: dict[str, dict[str, Any]] = {}
    for name in names:
        own = [span for span in spans if span.name == name]
        timing[name] = {
            "count": len(own),
            "median_schedule_to_start_ms": statistics.median(s.started - s.scheduled for s in own) * 1000,
            "median_start_to_close_ms": statistics.median(s.completed - s.started for s in own) * 1000,
        }
    return timing


def phase_seconds(spans: list[ActivitySpan]) -> dict[str, float]:
    """Return the wall time of preflight and of the batches (changes plus health gates).

    Preflight runs from the first snapshot scheduled to the last one completed, and the
    batches from the first change scheduled to the last health gate completed. A phase
    without activities is 0.
    """
    def span(first: str, last: str) -> float:
        starts = [s.scheduled for s in spans if s.name == first]
        ends = [s.completed for s in spans if s.name == last]
        return max(ends) - min(starts) if starts and ends else 0.0

    return {"preflight": span(PREFLIGHT_ACTIVITY, PREFLIGHT_ACTIVITY),
            "batches": span(APPLY_ACTIVITY, GATE_ACTIVITY)}
