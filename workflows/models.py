"""Arguments and results of workflows and activities: one frozen pydantic model each.

No model carries a secret: activities fetch credentials by device id, so workflow histories
stay free of them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class PlanApplyInput(_Frozen):
    plan_id: str
    plan_hash: str
    requested_by: str


class PlanApplyResult(_Frozen):
    plan_id: str
    status: str
    detail: str | None = None


class StepRef(_Frozen):
    seq: int
    device_id: str
    path: str
    action: str


class RolloutPolicy(_Frozen):
    """How a multi-device plan rolls out: canary first, then batches behind health gates."""

    canary: int = Field(1, ge=0, description="Devices changed alone before any batch")
    batch_size: int = Field(10, ge=1, description="Devices per batch after the canary")
    max_parallel: int = Field(10, ge=1, description="Devices changed at the same time")
    on_failure: str = Field("rollback_batch", pattern="^(rollback_batch|rollback_all)$",
                            description="rollback_batch keeps earlier batches applied")
    health_checks: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Extra reads after each batch: {path, where} must match at least one item",
    )


class ApprovalPolicy(_Frozen):
    mode: str = Field("auto", pattern="^(auto|one|four_eyes)$")
    timeout_seconds: int = Field(86400, ge=1)


class LoadedPlan(_Frozen):
    plan_id: str
    author: str
    device_ids: list[str]
    environments: list[str]
    risk: str
    steps: list[StepRef]
    device_attempts: int = Field(description="Attempts for a retryable device call")
    rollout: RolloutPolicy = RolloutPolicy()
    approval: ApprovalPolicy = ApprovalPolicy()
    incident_paused: bool = False
    dead_man_devices: list[str] = Field(default_factory=list)
    dead_man_seconds: int = 120
    search_attributes: bool = Field(
        True, description="Upsert TikflowPhase; off where the namespace lacks the attribute")


class PlanRef(_Frozen):
    plan_id: str
    plan_hash: str


class DeviceStepInput(_Frozen):
    plan_id: str
    device_id: str


class ChangeStepInput(_Frozen):
    plan_id: str
    seq: int


class ChangeStepResult(_Frozen):
    seq: int
    created_id: str | None = None
    already_applied: bool = False


class UndoResult(_Frozen):
    seq: int
    undone: bool
    note: str | None = None


class VerifyResult(_Frozen):
    device_id: str
    ok: bool
    problems: list[str] = Field(default_factory=list)


class PlanStatusInput(_Frozen):
    plan_id: str
    status: str
    detail: str | None = None
    workflow_id: str | None = None
    progress: PlanProgress | None = None


class StepProgress(_Frozen):
    seq: int
    device_id: str
    path: str
    action: str
    status: str
    error: str | None = None


class BatchProgress(_Frozen):
    index: int
    label: str
    device_ids: list[str]
    status: str


class PlanProgress(_Frozen):
    plan_id: str
    status: str
    phase: str
    detail: str | None
    steps: list[StepProgress]
    batches: list[BatchProgress] = Field(default_factory=list)
    approved_by: list[str] = Field(default_factory=list)
    paused: bool = False


class ApproveInput(_Frozen):
    """An approval, bound to the plan hash the approver reviewed."""

    plan_hash: str
    approver: str
    roles: list[str]
    note: str | None = None


class ApprovalResult(_Frozen):
    plan_id: str
    approved_by: list[str]
    approved: bool


class ControlInput(_Frozen):
    """Pause, resume or abort, from an operator or the incident switch."""

    by: str
    reason: str | None = None
    incident: bool = False


class DeadManInput(_Frozen):
    plan_id: str
    device_id: str
    seconds: int


class ResolveInput(_Frozen):
    """An operator's word on a plan waiting in ``needs_operator``."""

    outcome: str = Field(description="rolled_back, applied or failed: what the device state now is")
    note: str
    by: str


# Device lifecycle: register, rotate credentials, decommission. Credentials travel by id only.


class RegisterDeviceInput(_Frozen):
    device_id: str
    requested_by: str


class DeviceRef(_Frozen):
    device_id: str


class DeviceFacts(_Frozen):
    """What registration read from a device."""

    identity: str
    version: str
    board: str
    uptime: str
    device_mode: dict[str, str] = Field(default_factory=dict)
    transports: dict[str, str] = Field(
        default_factory=dict, description="Per transport: open, closed or disabled"
    )


class HealthReport(_Frozen):
    ok: bool
    problems: list[str] = Field(default_factory=list)
    cpu_load: int | None = None
    free_memory: int | None = None


class SnapshotRequest(_Frozen):
    device_id: str
    reason: str


class SnapshotRef(_Frozen):
    snapshot_id: int
    sha256: str


class DeviceStatusUpdate(_Frozen):
    device_id: str
    status: str
    reason: str | None = None
    facts: DeviceFacts | None = None


class LifecycleResult(_Frozen):
    device_id: str
    status: str
    detail: str | None = None


class LifecycleProgress(_Frozen):
    device_id: str
    status: str
    phase: str
    detail: str | None = None


class RotateCredentialsInput(_Frozen):
    device_id: str
    generation: int = Field(description="Generation of the new credential; also in the workflow id")
    policy: str = Field(description="same-user: new password; new-user: new service account")
    requested_by: str


class PendingCredential(_Frozen):
    device_id: str
    credential_id: int
    username: str
    old_credential_id: int
    old_username: str
    policy: str


class CredentialRef(_Frozen):
    credential_id: int


class CredentialCheck(_Frozen):
    credential_id: int
    works: bool
    reason: str | None = None


class DecommissionInput(_Frozen):
    device_id: str
    remove_service_account: bool
    requested_by: str


class LifecycleAuditInput(_Frozen):
    device_id: str
    action: str
    result: str
    actor: str
    detail: str | None = None


PlanStatusInput.model_rebuild()


class EnvironmentRotationInput(_Frozen):
    """A scheduled rotation of every active device in one environment."""

    environment: str
    policy: str = Field(description="same-user or new-user, as for a single rotation")


class RotationTarget(_Frozen):
    device_id: str
    generation: int


class RotationTargets(_Frozen):
    items: list[RotationTarget]


class EnvironmentRotationResult(_Frozen):
    environment: str
    outcomes: dict[str, str] = Field(description="Per device id: the rotation's final status")
