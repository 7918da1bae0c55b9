"""PlanApply: apply a stored plan step by step, and undo it by compensation when a step fails.

Workflow id ``plan-apply:{plan_id}``. The saga is a plain list: each step's undo is registered
before the step runs, and on failure the undos run in reverse, each one "undo if applied", so a
step that failed half-way is undone too. Every run ends ``applied``, ``rolled_back``, ``failed``
(stale plan: nothing was changed) or ``needs_operator`` (rollback could not restore the snapshot;
the workflow then waits for the ``resolve`` signal).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.models import (
        ChangeStepInput,
        DeviceStepInput,
        LoadedPlan,
        PlanApplyInput,
        PlanApplyResult,
        PlanProgress,
        PlanRef,
        PlanStatusInput,
        ResolveInput,
        StepProgress,
        VerifyResult,
    )

PLAN_ID = SearchAttributeKey.for_keyword("TikflowPlanId")
DEVICE_IDS = SearchAttributeKey.for_keyword_list("TikflowDeviceIds")
ENVIRONMENT = SearchAttributeKey.for_keyword("TikflowEnvironment")
RISK_LEVEL = SearchAttributeKey.for_keyword("TikflowRiskLevel")
PHASE = SearchAttributeKey.for_keyword("TikflowPhase")

# Errors a retry cannot fix; everything else (transport faults, timeouts) is retried.
NON_RETRYABLE = [
    "StalePlan",
    "PlanHashMismatch",
    "AuthenticationFailed",
    "PermissionDenied",
    "TlsVerificationFailed",
    "InvalidValue",
    "UnknownParameter",
    "UnknownPath",
    "ItemNotFound",
    "AlreadyExists",
    "CommandFailed",
    "DeviceNotFound",
]


def workflow_id_for(plan_id: str) -> str:
    return f"plan-apply:{plan_id}"


@workflow.defn(name="PlanApply")
class PlanApplyWorkflow:
    def __init__(self) -> None:
        self._status = "applying"
        self._phase = "preflight"
        self._detail: str | None = None
        self._steps: dict[int, StepProgress] = {}
        self._plan_id = ""
        self._resolution: ResolveInput | None = None

    @workflow.run
    async def run(self, request: PlanApplyInput) -> PlanApplyResult:
        self._plan_id = request.plan_id
        plan: LoadedPlan = await workflow.execute_activity(
            "load_plan_for_apply",
            PlanRef(plan_id=request.plan_id, plan_hash=request.plan_hash),
            result_type=LoadedPlan,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=NON_RETRYABLE),
        )
        self._steps = {
            s.seq: StepProgress(seq=s.seq, device_id=s.device_id, path=s.path, action=s.action,
                                status="pending")
            for s in plan.steps
        }
        device_retry = RetryPolicy(
            initial_interval=timedelta(seconds=1),
            maximum_interval=timedelta(seconds=20),
            maximum_attempts=plan.device_attempts,
            non_retryable_error_types=NON_RETRYABLE,
        )
        await self._set_status("applying", "preflight", "checking fingerprints, taking snapshots")

        try:
            for device_id in plan.device_ids:
                await self._device_activity("snapshot_and_check", device_id, device_retry)
        except ActivityError as err:
            detail = _failure_text(err)
            if _failure_type(err) == "StalePlan":
                detail = f"stale plan, nothing was changed: {detail}"
            return await self._finish("failed", detail)

        compensations: list[int] = []
        try:
            await self._set_status("applying", "apply", None)
            for step in plan.steps:
                compensations.append(step.seq)
                await self._run_step("apply_change", step.seq, "applying", "applied", device_retry)
            await self._set_status("applying", "verify", "reading back the changed paths")
            for device_id in plan.device_ids:
                result = await self._device_activity("verify_applied", device_id, device_retry)
                if not result.ok:
                    raise ApplicationError("verification failed: " + "; ".join(result.problems),
                                           type="VerificationFailed", non_retryable=True)
        except (ActivityError, ApplicationError) as err:
            failure = _failure_text(err)
            return await self._compensate(plan, compensations, failure, device_retry)

        return await self._finish("applied", None)

    async def _compensate(self, plan: LoadedPlan, compensations: list[int], failure: str,
                          retry: RetryPolicy) -> PlanApplyResult:
        await self._set_status("rolling_back", "rollback", f"undoing after failure: {failure}")
        undo_failures: list[str] = []
        for seq in reversed(compensations):
            try:
                await self._run_step("undo_change", seq, "undoing", "undone", retry)
            except ActivityError as err:
                # Keep unwinding: one failed undo must not leave the earlier steps applied.
                undo_failures.append(f"step {seq}: {_failure_text(err)}")

        problems = list(undo_failures)
        for device_id in plan.device_ids:
            try:
                result = await self._device_activity("verify_rolled_back", device_id, retry)
                problems.extend(result.problems)
            except ActivityError as err:
                problems.append(f"{device_id}: cannot verify rollback: {_failure_text(err)}")

        if not problems:
            return await self._finish("rolled_back", f"step failed: {failure}")

        await self._set_status(
            "needs_operator", "needs_operator",
            f"step failed: {failure}; rollback did not restore the snapshot: " + "; ".join(problems),
        )
        await workflow.wait_condition(lambda: self._resolution is not None)
        assert self._resolution is not None
        note = f"resolved by {self._resolution.by}: {self._resolution.note}"
        return await self._finish(self._resolution.outcome, note)

    async def _run_step(self, activity_name: str, seq: int, running: str, done: str,
                        retry: RetryPolicy) -> None:
        self._mark(seq, running)
        try:
            await workflow.execute_activity(
                activity_name,
                ChangeStepInput(plan_id=self._plan_id, seq=seq),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=retry,
            )
        except ActivityError as err:
            self._mark(seq, f"{running}_failed", _failure_text(err))
            raise
        self._mark(seq, done)

    async def _device_activity(self, name: str, device_id: str, retry: RetryPolicy) -> VerifyResult:
        return await workflow.execute_activity(
            name,
            DeviceStepInput(plan_id=self._plan_id, device_id=device_id),
            result_type=VerifyResult,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=retry,
        )

    def _mark(self, seq: int, status: str, error: str | None = None) -> None:
        self._steps[seq] = self._steps[seq].model_copy(update={"status": status, "error": error})

    async def _set_status(self, status: str, phase: str, detail: str | None) -> None:
        self._status, self._phase, self._detail = status, phase, detail
        workflow.upsert_search_attributes([PHASE.value_set(phase)])
        workflow.set_current_details(f"**{status}** ({phase})" + (f": {detail}" if detail else ""))
        await workflow.execute_activity(
            "record_plan_status",
            PlanStatusInput(plan_id=self._plan_id, status=status, detail=detail,
                            workflow_id=workflow.info().workflow_id),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )

    async def _finish(self, status: str, detail: str | None) -> PlanApplyResult:
        await self._set_status(status, "done", detail)
        return PlanApplyResult(plan_id=self._plan_id, status=status, detail=detail)

    @workflow.query
    def progress(self) -> PlanProgress:
        return PlanProgress(plan_id=self._plan_id, status=self._status, phase=self._phase,
                            detail=self._detail, steps=list(self._steps.values()))

    @workflow.signal
    def resolve(self, resolution: ResolveInput) -> None:
        """Record an operator's resolution of a plan that needs one; ignored otherwise."""
        if self._status == "needs_operator" and resolution.outcome in ("rolled_back", "applied", "failed"):
            self._resolution = resolution


def _failure_type(err: BaseException) -> str | None:
    cause = err.cause if isinstance(err, ActivityError) else err
    return cause.type if isinstance(cause, ApplicationError) else None


def _failure_text(err: BaseException) -> str:
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    return str(cause.message if hasattr(cause, "message") else cause)
