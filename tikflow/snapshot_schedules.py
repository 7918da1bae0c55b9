"""Temporal Schedules that take configuration snapshots, one per device environment.

``snapshot-schedule:{env}`` starts the DeviceSnapshot workflow every ``interval_seconds`` of the
environment's ``snapshots`` settings. Applying is idempotent: a missing schedule is created, an
existing one is replaced with the current settings, and a disabled environment's schedule is
paused rather than deleted, so its run history stays visible in the Temporal UI.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from tikflow.settings import Settings, SnapshotPolicy
from workflows.device_snapshot import ENVIRONMENT, DeviceSnapshotWorkflow, schedule_id_for
from workflows.snapshot_models import DeviceSnapshotInput

ENVIRONMENTS = ("lab", "staging", "prod")


@dataclass(frozen=True)
class ScheduleChange:
    """Outcome of ``apply_snapshot_schedules`` for one environment's schedule."""

    environment: str
    schedule_id: str
    action: str
    interval_seconds: int
    retention: int
    paused: bool


def snapshot_schedule(environment: str, policy: SnapshotPolicy, task_queue: str) -> Schedule:
    """Build the schedule that exports every active device of ``environment``."""
    interval = timedelta(seconds=policy.interval_seconds)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DeviceSnapshotWorkflow.run,
            DeviceSnapshotInput(environment=environment, retention=policy.retention),
            # Temporal appends the scheduled time to this id for each run.
            id=f"device-snapshot:{environment}",
            task_queue=task_queue,
            typed_search_attributes=TypedSearchAttributes([SearchAttributePair(ENVIRONMENT, environment)]),
            static_summary=f"Configuration snapshots of the {environment} devices",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=interval)]),
        # A run still exporting when the next is due makes that next run be skipped, and runs
        # missed while Temporal was down are not made up beyond one interval.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP,
                              catchup_window=max(interval, timedelta(minutes=1))),
        state=ScheduleState(paused=not policy.enabled,
                            note="" if policy.enabled else "disabled by snapshots settings"),
    )


async def apply_snapshot_schedules(client: Client, settings: Settings,
                                   environments: tuple[str, ...] = ENVIRONMENTS) -> list[ScheduleChange]:
    """Create or update the snapshot schedule of each environment from ``settings``."""
    changes = []
    for environment in environments:
        policy: SnapshotPolicy = getattr(settings.snapshots, environment)
        schedule = snapshot_schedule(environment, policy, settings.temporal.task_queue)
        schedule_id = schedule_id_for(environment)
        try:
            await client.create_schedule(schedule_id, schedule)
            action = "created"
        except ScheduleAlreadyRunningError:
            await client.get_schedule_handle(schedule_id).update(_replace_with(schedule))
            action = "updated"
        changes.append(ScheduleChange(environment=environment, schedule_id=schedule_id, action=action,
                                      interval_seconds=policy.interval_seconds,
                                      retention=policy.retention, paused=not policy.enabled))
    return changes


def _replace_with(schedule: Schedule):
    def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    return update
