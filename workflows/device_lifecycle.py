"""Device lifecycle workflows: register, rotate credentials, decommission.

Workflow ids are business ids: ``device-register:{device_id}``,
``credential-rotate:{device_id}:{generation}`` and ``device-decommission:{device_id}``. Inputs
carry ids only; activities read credentials from the database, so no history contains a secret.

Rotation is a saga with one compensation, ``reconcile_credentials``: whatever step fails, it
leaves the device with exactly one working credential that tikflow holds, or, when neither the
old nor the new one logs in, ends ``needs_operator`` without changing anything.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from workflows.models import (
        CredentialCheck,
        CredentialRef,
        DecommissionInput,
        DeviceFacts,
        DeviceRef,
        DeviceStatusUpdate,
        EnvironmentRotationInput,
        EnvironmentRotationResult,
        HealthReport,
        LifecycleAuditInput,
        LifecycleProgress,
        LifecycleResult,
        PendingCredential,
        RegisterDeviceInput,
        RotateCredentialsInput,
        RotationTarget,
        RotationTargets,
        SnapshotRef,
        SnapshotRequest,
    )

PHASE = SearchAttributeKey.for_keyword("TikflowPhase")

# Errors a retry cannot fix; transport faults and timeouts are retried.
NON_RETRYABLE = [
    "AuthenticationFailed",
    "PermissionDenied",
    "TlsVerificationFailed",
    "HostKeyVerificationFailed",
    "InvalidValue",
    "UnknownParameter",
    "UnknownPath",
    "ItemNotFound",
    "AlreadyExists",
    "CommandFailed",
    "DeviceNotFound",
    "NoActiveCredential",
    "NoWorkingCredential",
]

# Device calls: a few quick retries, so an unreachable device fails within about a minute.
DEVICE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10),
                           maximum_attempts=4, non_retryable_error_types=NON_RETRYABLE)
# Database calls: retried for about two minutes, because the outcome must be recorded.
DATABASE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=10), maximum_attempts=15,
                             non_retryable_error_types=["DeviceNotFound", "InvalidValue",
                                                        "AlreadyExists", "NoActiveCredential"])
DEVICE_TIMEOUT = timedelta(minutes=2)
DATABASE_TIMEOUT = timedelta(seconds=30)


def register_workflow_id(device_id: str) -> str:
    return f"device-register:{device_id}"


def rotate_workflow_id(device_id: str, generation: int) -> str:
    return f"credential-rotate:{device_id}:{generation}"


def decommission_workflow_id(device_id: str) -> str:
    return f"device-decommission:{device_id}"


def failure_text(err: BaseException) -> str:
    """Return the innermost failure message: the activity's own words, not Temporal's wrapper."""
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    return str(cause.message if isinstance(cause, ApplicationError) else cause)


def failure_type(err: BaseException) -> str | None:
    cause = err.cause if isinstance(err, ActivityError) else err
    return cause.type if isinstance(cause, ApplicationError) else None


class _Lifecycle:
    """Progress shared by the three workflows: status, phase and detail, queryable as ``progress``."""

    def __init__(self) -> None:
        self._device_id = ""
        self._status = "running"
        self._phase = "starting"
        self._detail: str | None = None

    def _set_phase(self, phase: str, detail: str | None = None) -> None:
        self._phase, self._detail = phase, detail
        workflow.upsert_search_attributes([PHASE.value_set(phase)])
        workflow.set_current_details(f"**{self._status}** ({phase})" + (f": {detail}" if detail else ""))

    async def _device_call(self, name: str, argument: object, result_type: type | None = None):
        return await workflow.execute_activity(name, argument, result_type=result_type,
                                               start_to_close_timeout=DEVICE_TIMEOUT,
                                               retry_policy=DEVICE_RETRY)

    async def _database_call(self, name: str, argument: object, result_type: type | None = None):
        return await workflow.execute_activity(name, argument, result_type=result_type,
                                               start_to_close_timeout=DATABASE_TIMEOUT,
                                               retry_policy=DATABASE_RETRY)

    async def _finish(self, status: str, detail: str | None, action: str, actor: str) -> LifecycleResult:
        self._status = status
        self._set_phase("done", detail)
        await self._database_call("record_lifecycle_audit", LifecycleAuditInput(
            device_id=self._device_id, action=action, result=status, actor=actor, detail=detail))
        return LifecycleResult(device_id=self._device_id, status=status, detail=detail)

    @workflow.query
    def progress(self) -> LifecycleProgress:
        return LifecycleProgress(device_id=self._device_id, status=self._status, phase=self._phase,
                                 detail=self._detail)


@workflow.defn(name="DeviceRegister")
class DeviceRegisterWorkflow(_Lifecycle):
    """Connect, read facts, check health, take the first snapshot, then mark the device active."""

    @workflow.run
    async def run(self, request: RegisterDeviceInput) -> LifecycleResult:
        self._device_id = request.device_id
        ref = DeviceRef(device_id=request.device_id)
        try:
            self._set_phase("connect", "logging in and reading identity, version and services")
            facts: DeviceFacts = await self._device_call("probe_device", ref, DeviceFacts)
            self._set_phase("health", f"{facts.identity} runs RouterOS {facts.version}")
            health: HealthReport = await self._device_call("check_health", ref, HealthReport)
            if not health.ok:
                raise ApplicationError("health check failed: " + "; ".join(health.problems),
                                       type="HealthCheckFailed", non_retryable=True)
            self._set_phase("snapshot", "storing the first configuration export")
            await self._device_call("take_snapshot",
                                    SnapshotRequest(device_id=request.device_id, reason="register"),
                                    SnapshotRef)
        except (ActivityError, ApplicationError) as err:
            reason = failure_text(err)
            workflow.logger.warning("registration failed, device stays pending: %s", reason)
            await self._database_call("record_device_status", DeviceStatusUpdate(
                device_id=request.device_id, status="pending", reason=reason))
            return await self._finish("pending", reason, "device.register", request.requested_by)

        await self._database_call("record_device_status", DeviceStatusUpdate(
            device_id=request.device_id, status="active", facts=facts))
        return await self._finish("active", f"{facts.identity} is active", "device.register",
                                  request.requested_by)


@workflow.defn(name="CredentialRotate")
class CredentialRotateWorkflow(_Lifecycle):
    """Create a new secret on the router, store it, prove it, then disable the old credential."""

    @workflow.run
    async def run(self, request: RotateCredentialsInput) -> LifecycleResult:
        self._device_id = request.device_id
        action = "device.rotate_credentials"
        self._set_phase("prepare", "storing a new secret, encrypted")
        try:
            pending: PendingCredential = await self._database_call(
                "prepare_credential", request, PendingCredential)
        except ActivityError as err:
            workflow.logger.warning("rotation did not start: %s", failure_text(err))
            return await self._finish("failed", f"nothing was changed: {failure_text(err)}", action,
                                      request.requested_by)

        try:
            self._set_phase("install", f"setting the new secret for {pending.username} on the router")
            await self._device_call("install_credential", pending)
            self._set_phase("prove", "logging in with the new credential")
            check: CredentialCheck = await self._device_call(
                "check_credential", CredentialRef(credential_id=pending.credential_id), CredentialCheck)
            if not check.works:
                raise ApplicationError(f"the new credential does not log in: {check.reason}",
                                       type="CredentialNotProven", non_retryable=True)
            self._set_phase("activate", "storing the new credential as the active one")
            await self._database_call("activate_credential", pending)
            self._set_phase("disable-old", "disabling the old credential")
            done: str = await self._device_call("disable_old_credential", pending, str)
        except (ActivityError, ApplicationError) as err:
            return await self._compensate(pending, failure_text(err), request.requested_by)

        return await self._finish("rotated", f"{pending.username} now holds the new secret; {done}",
                                  action, request.requested_by)

    async def _compensate(self, pending: PendingCredential, failure: str, actor: str) -> LifecycleResult:
        action = "device.rotate_credentials"
        workflow.logger.warning("rotation failed, reconciling credentials: %s", failure)
        self._status = "compensating"
        self._set_phase("reconcile", f"rotation failed ({failure}); finding the working credential")
        try:
            outcome: LifecycleResult = await self._device_call("reconcile_credentials", pending,
                                                               LifecycleResult)
        except ActivityError as err:
            reason = f"rotation failed ({failure}) and {failure_text(err)}"
            workflow.logger.error("rotation needs an operator: %s", reason)
            return await self._finish("needs_operator", reason, action, actor)
        return await self._finish(outcome.status, f"rotation failed ({failure}); {outcome.detail}",
                                  action, actor)


@workflow.defn(name="DeviceDecommission")
class DeviceDecommissionWorkflow(_Lifecycle):
    """Mark the device inactive, keep a last snapshot, and optionally remove tikflow's account."""

    @workflow.run
    async def run(self, request: DecommissionInput) -> LifecycleResult:
        self._device_id = request.device_id
        ref = DeviceRef(device_id=request.device_id)
        self._set_phase("deactivate", "refusing new plans for this device")
        await self._database_call("record_device_status", DeviceStatusUpdate(
            device_id=request.device_id, status="inactive", reason="decommissioned"))

        notes: list[str] = []
        self._set_phase("snapshot", "keeping a last configuration export")
        try:
            await self._device_call("take_snapshot",
                                    SnapshotRequest(device_id=request.device_id, reason="decommission"),
                                    SnapshotRef)
        except ActivityError as err:
            workflow.logger.warning("decommission without a final snapshot: %s", failure_text(err))
            notes.append(f"no final snapshot: {failure_text(err)}")

        if request.remove_service_account:
            self._set_phase("cleanup", "removing tikflow's account from the router")
            try:
                notes.append(await self._device_call("remove_service_account", request, str))
            except ActivityError as err:
                workflow.logger.warning("service account not removed: %s", failure_text(err))
                notes.append(f"the account could not be removed: {failure_text(err)}")

        await self._database_call("retire_credentials", ref)
        detail = "; ".join(["device is inactive", *notes])
        return await self._finish("inactive", detail, "device.decommission", request.requested_by)


@workflow.defn(name="CredentialRotateEnvironment")
class EnvironmentRotationWorkflow:
    """Rotate the credentials of every active device in one environment, one device at a time.

    A Temporal Schedule per environment starts this workflow; each device gets its own
    ``credential-rotate`` child workflow, so every rotation keeps its business id and history.
    """

    @workflow.run
    async def run(self, request: EnvironmentRotationInput) -> EnvironmentRotationResult:
        targets: RotationTargets = await workflow.execute_activity(
            "list_rotation_targets", request, result_type=RotationTargets,
            start_to_close_timeout=DEVICE_TIMEOUT, retry_policy=DATABASE_RETRY)
        outcomes: dict[str, str] = {}
        for target in targets.items:
            workflow.set_current_details(
                f"rotating {target.device_id} ({len(outcomes) + 1} of {len(targets.items)})")
            outcomes[target.device_id] = await self._rotate(request, target)
        return EnvironmentRotationResult(environment=request.environment, outcomes=outcomes)

    async def _rotate(self, request: EnvironmentRotationInput, target: RotationTarget) -> str:
        rotation = RotateCredentialsInput(device_id=target.device_id, generation=target.generation,
                                          policy=request.policy,
                                          requested_by=f"schedule:{request.environment}")
        try:
            result: LifecycleResult = await workflow.execute_child_workflow(
                CredentialRotateWorkflow.run, rotation,
                id=rotate_workflow_id(target.device_id, target.generation),
                parent_close_policy=workflow.ParentClosePolicy.ABANDON)
        except WorkflowAlreadyStartedError:
            workflow.logger.warning("skipped %s: its rotation id is taken", target.device_id)
            return "skipped: a rotation with this generation already exists"
        except ChildWorkflowError as err:
            workflow.logger.warning("rotation of %s failed: %s", target.device_id,
                                    failure_text(err.cause or err))
            return f"failed: {failure_text(err.cause or err)}"
        return result.status


WORKFLOWS = [DeviceRegisterWorkflow, CredentialRotateWorkflow, DeviceDecommissionWorkflow,
             EnvironmentRotationWorkflow]
