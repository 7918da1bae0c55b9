"""DeviceSnapshot: export devices' configuration into snapshots and prune old ones.

A Temporal Schedule per device environment (``snapshot-schedule:{env}``) starts this workflow
with the environment; Temporal names each run ``device-snapshot:{env}-<start time>``. An
operator can also start it for chosen devices as ``device-snapshot:{device_id}:{timestamp}``.

One device that cannot be reached does not stop the others: its failure is listed in the
result and the run still completes, so the schedule keeps its normal cadence.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.snapshot_models import (
        DeviceExportInput,
        DeviceExportResult,
        DeviceSnapshotInput,
        DeviceSnapshotResult,
        SnapshotTargets,
    )

# Set by the schedule when it starts a run, so the Temporal UI can filter runs by environment.
ENVIRONMENT = SearchAttributeKey.for_keyword("TikflowEnvironment")

# Devices exported at the same time by one run.
PARALLEL_EXPORTS = 8
EXPORT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1),
                           maximum_attempts=4,
                           non_retryable_error_types=["AuthenticationFailed", "PermissionDenied",
                                                      "TlsVerificationFailed", "DeviceNotFound",
                                                      "HostKeyVerificationFailed", "DeviceUnavailable"])


def schedule_id_for(environment: str) -> str:
    return f"snapshot-schedule:{environment}"


def workflow_id_for(device_id: str, timestamp: str) -> str:
    return f"device-snapshot:{device_id}:{timestamp}"


@workflow.defn(name="DeviceSnapshot")
class DeviceSnapshotWorkflow:
    @workflow.run
    async def run(self, request: DeviceSnapshotInput) -> DeviceSnapshotResult:
        targets: SnapshotTargets = await workflow.execute_activity(
            "resolve_snapshot_targets", request, result_type=SnapshotTargets,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=["InvalidValue"]),
        )
        workflow.set_current_details(
            f"exporting {len(targets.device_ids)} devices, keeping {targets.retention} "
            f"{request.reason} snapshots each")
        stored: list[DeviceExportResult] = []
        failed: dict[str, str] = {}
        for start in range(0, len(targets.device_ids), PARALLEL_EXPORTS):
            batch = targets.device_ids[start:start + PARALLEL_EXPORTS]
            outcomes = await asyncio.gather(
                *(self._export(device_id, request.reason, targets.retention) for device_id in batch),
                return_exceptions=True)
            for device_id, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, ActivityError):
                    failed[device_id] = str(outcome.cause or outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    stored.append(outcome)
        if failed:
            workflow.logger.warning("snapshots failed for %d of %d devices: %s", len(failed),
                                    len(targets.device_ids), ", ".join(sorted(failed)))
        return DeviceSnapshotResult(environment=request.environment, stored=stored, failed=failed)

    async def _export(self, device_id: str, reason: str, retention: int) -> DeviceExportResult:
        return await workflow.execute_activity(
            "export_device_snapshot",
            DeviceExportInput(device_id=device_id, reason=reason, retention=retention),
            result_type=DeviceExportResult,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=EXPORT_RETRY,
        )
