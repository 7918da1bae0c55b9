"""PlanApply: approve, then roll a stored plan out device by device, undoing it on failure.

Workflow id ``plan-apply:{plan_id}``. The run goes through these phases, each visible in the
``TikflowPhase`` search attribute and the workflow's current details:

1. ``approval``: wait for the ``approve`` update when the environment's policy asks for it; an
   unapproved plan expires (``aborted``) after the policy's timeout.
2. ``preflight``: per device, fail closed when the device changed since planning (stale plan,
   ``failed``, nothing changed), else store a pre-apply snapshot.
3. ``rollout``: canary devices first, then batches; a health gate after each batch. Before each
   step the workflow stops while paused (operator or incident) and unwinds on abort.
4. On a failed step or gate: the saga unwinds. Each device's undo list is registered before
   every step and runs in reverse ("undo if applied"), then each device is compared with its
   snapshot. A rollback that cannot restore the snapshot ends in ``needs_operator`` and waits
   for the ``resolve`` signal.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.models import (
        ApprovalResult,
        ApproveInput,
        BatchProgress,
        ChangeStepInput,
        ControlInput,
        DeadManInput,
        DeviceStepInput,
        LoadedPlan,
        PlanApplyInput,
        PlanApplyResult,
        PlanProgress,
        PlanRef,
        PlanStatusInput,
        ResolveInput,
        RolloutPolicy,
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
    "HostKeyVerificationFailed",
    "InvalidValue",
    "UnknownParameter",
    "UnknownPath",
    "ItemNotFound",
    "AlreadyExists",
    "CommandFailed",
    "DeviceNotFound",
    "DeadManUnsupported",
]
APPROVER_ROLES = frozenset({"approver", "admin"})


def workflow_id_for(plan_id: str) -> str:
    return f"plan-apply:{plan_id}"


def plan_batches(device_ids: list[str], rollout: RolloutPolicy) -> list[tuple[str, list[str]]]:
    """Split devices into the canary batch and the batches after it, in plan order."""
    batches: list[tuple[str, list[str]]] = []
    canary = device_ids[: rollout.canary] if len(device_ids) > 1 else []
    if canary:
        batches.append(("canary", canary))
    rest = device_ids[len(canary):]
    for start in range(0, len(rest), rollout.batch_size):
        batches.append((f"batch {len(batches) + (0 if canary else 1)}", rest[start:start + rollout.batch_size]))
    return batches


class _Aborted(Exception):
    """An operator aborted the plan while it was rolling out."""


@workflow.defn(name="PlanApply")
class PlanApplyWorkflow:
    def __init__(self) -> None:
        self._plan_id = ""
        self._plan_hash = ""
        self._author = ""
        self._approval_mode = "auto"
        self._status = "applying"
        self._phase = "preflight"
        self._detail: str | None = None
        self._steps: dict[int, StepProgress] = {}
        self._batches: list[BatchProgress] = []
        self._approved_by: list[str] = []
        self._paused_by: str | None = None
        self._incident_paused = False
        self._abort_by: str | None = None
        self._resolution: ResolveInput | None = None
        self._undo: dict[str, list[int]] = {}
        self._search_attributes = True

    @workflow.run
    async def run(self, request: PlanApplyInput) -> PlanApplyResult:
        self._plan_id, self._plan_hash = request.plan_id, request.plan_hash
        try:
            plan: LoadedPlan = await workflow.execute_activity(
                "load_plan_for_apply",
                PlanRef(plan_id=request.plan_id, plan_hash=request.plan_hash),
                result_type=LoadedPlan,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=NON_RETRYABLE),
            )
        except ActivityError as err:
            # Nothing ran yet: a plan that cannot start ends failed, not stuck in "applying".
            return await self._finish("failed", f"nothing was changed: {_failure_text(err)}")
        self._author, self._approval_mode = plan.author, plan.approval.mode
        self._search_attributes = plan.search_attributes
        self._incident_paused = plan.incident_paused
        self._steps = {
            s.seq: StepProgress(seq=s.seq, device_id=s.device_id, path=s.path, action=s.action,
                                status="pending")
            for s in plan.steps
        }
        batches = plan_batches(plan.device_ids, plan.rollout)
        self._batches = [BatchProgress(index=i, label=label, device_ids=ids, status="pending")
                         for i, (label, ids) in enumerate(batches)]
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=1),
            maximum_interval=timedelta(seconds=20),
            maximum_attempts=plan.device_attempts,
            non_retryable_error_types=NON_RETRYABLE,
        )

        if plan.approval.mode != "auto":
            expired = await self._await_approval(plan)
            if expired is not None:
                return await self._finish("aborted", expired)

        try:
            await self._gate()
            await self._set_status("applying", "preflight", "checking fingerprints, taking snapshots")
            await self._preflight(plan, retry)
        except _Aborted:
            return await self._finish("aborted", f"aborted by {self._abort_by} before any change")
        except ActivityError as err:
            detail = _failure_text(err)
            if _failure_type(err) == "StalePlan":
                detail = f"stale plan, nothing was changed: {detail}"
            return await self._finish("failed", detail)

        return await self._roll_out(plan, retry)

    async def _preflight(self, plan: LoadedPlan, retry: RetryPolicy) -> None:
        """Check fingerprints and take snapshots; any device's failure fails the whole plan."""
        if not workflow.patched("parallel-preflight"):
            # Histories recorded before preflight ran in parallel checked devices one by one.
            for device_id in plan.device_ids:
                await self._device_activity("snapshot_and_check", device_id, retry)
            return
        limit = asyncio.Semaphore(plan.rollout.max_parallel)

        async def check(device_id: str) -> VerifyResult:
            async with limit:
                return await self._device_activity("snapshot_and_check", device_id, retry)

        results = await asyncio.gather(*(check(d) for d in plan.device_ids), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _await_approval(self, plan: LoadedPlan) -> str | None:
        """Wait for approval; return why the plan ended when it expired or was aborted."""
        needed = "an approver other than the author" if plan.approval.mode == "four_eyes" else "an approver"
        await self._set_status("awaiting_approval", "approval", f"waiting for {needed}")
        try:
            await workflow.wait_condition(
                lambda: bool(self._approved_by) or self._abort_by is not None,
                timeout=timedelta(seconds=plan.approval.timeout_seconds),
            )
        except TimeoutError:
            return f"expired: not approved within {plan.approval.timeout_seconds} s"
        if self._abort_by is not None:
            return f"aborted by {self._abort_by} before approval"
        return None

    async def _roll_out(self, plan: LoadedPlan, retry: RetryPolicy) -> PlanApplyResult:
        steps_by_device: dict[str, list[int]] = {d: [] for d in plan.device_ids}
        for step in plan.steps:
            steps_by_device[step.device_id].append(step.seq)
        limit = asyncio.Semaphore(plan.rollout.max_parallel)

        for batch in list(self._batches):
            self._set_batch(batch.index, "applying")
            await self._set_status("applying", "rollout", f"{batch.label}: {len(batch.device_ids)} device(s)")
            results = await asyncio.gather(
                *(self._apply_device(d, steps_by_device[d], plan, retry, limit) for d in batch.device_ids),
                return_exceptions=True,
            )
            if any(isinstance(r, _Aborted) for r in results):
                self._set_batch(batch.index, "aborted")
                return await self._compensate(list(self._undo), f"aborted by {self._abort_by}",
                                              retry, final="aborted")
            failures = [_failure_text(r) if isinstance(r, BaseException) else r
                        for r in results if r is not None]
            if not failures:
                failures = await self._health_gate(batch.device_ids, retry)
            if failures:
                self._set_batch(batch.index, "failed")
                failure = f"{batch.label} failed: " + "; ".join(failures)
                if plan.rollout.on_failure == "rollback_all" or batch.index == 0:
                    return await self._compensate(list(self._undo), failure, retry, final="rolled_back")
                kept = [d for b in self._batches[: batch.index] for d in b.device_ids]
                return await self._compensate(
                    batch.device_ids, failure, retry, final="failed",
                    note=f"earlier batches stay applied on {len(kept)} device(s)")
            self._set_batch(batch.index, "applied")
        return await self._finish("applied", None)

    async def _apply_device(self, device_id: str, seqs: list[int], plan: LoadedPlan,
                            retry: RetryPolicy, limit: asyncio.Semaphore) -> str | None:
        """Apply one device's steps in order; return a failure text, or None when all applied."""
        async with limit:
            armed = device_id in plan.dead_man_devices
            if armed:
                await self._gate()
                await workflow.execute_activity(
                    "arm_dead_man", DeadManInput(plan_id=self._plan_id, device_id=device_id,
                                                 seconds=plan.dead_man_seconds),
                    start_to_close_timeout=timedelta(minutes=2), retry_policy=retry)
            for seq in seqs:
                await self._gate()
                self._undo.setdefault(device_id, []).append(seq)
                try:
                    await self._run_step("apply_change", seq, "applying", "applied", retry)
                except ActivityError as err:
                    return f"step {seq}: {_failure_text(err)}"
            if armed:
                try:
                    await workflow.execute_activity(
                        "disarm_dead_man", DeadManInput(plan_id=self._plan_id, device_id=device_id,
                                                        seconds=plan.dead_man_seconds),
                        start_to_close_timeout=timedelta(seconds=60),
                        retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=NON_RETRYABLE))
                except ActivityError as err:
                    # The device is out of reach through its new configuration: its scheduler
                    # job restores the pre-change backup, so wait for it before verifying.
                    await workflow.sleep(timedelta(seconds=plan.dead_man_seconds + 15))
                    return (f"lost contact after the change ({_failure_text(err)}); the device-side "
                            "dead-man switch restored the pre-change configuration")
        return None

    async def _health_gate(self, device_ids: list[str], retry: RetryPolicy) -> list[str]:
        await self._set_status("applying", "health_gate", f"checking {len(device_ids)} device(s)")
        results = await asyncio.gather(
            *(self._device_activity("verify_applied", d, retry) for d in device_ids),
            return_exceptions=True,
        )
        failures: list[str] = []
        for device_id, result in zip(device_ids, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(f"{device_id}: health gate failed: {_failure_text(result)}")
            elif not result.ok:
                failures.append(f"{device_id}: health gate failed: " + "; ".join(result.problems))
        return failures

    async def _compensate(self, device_ids: list[str], failure: str, retry: RetryPolicy, *,
                          final: str, note: str | None = None) -> PlanApplyResult:
        await self._set_status("rolling_back", "rollback", f"undoing after: {failure}")
        problems: list[str] = []
        for device_id in reversed(device_ids):
            for seq in reversed(self._undo.get(device_id, [])):
                try:
                    await self._run_step("undo_change", seq, "undoing", "undone", retry)
                except ActivityError as err:
                    # Keep unwinding: one failed undo must not leave the earlier steps applied.
                    problems.append(f"step {seq}: undo failed: {_failure_text(err)}")
        for device_id in device_ids:
            try:
                result = await self._device_activity("verify_rolled_back", device_id, retry)
                problems.extend(result.problems)
            except ActivityError as err:
                problems.append(f"{device_id}: cannot verify rollback: {_failure_text(err)}")

        if not problems:
            return await self._finish(final, failure + (f"; {note}" if note else ""))
        await self._set_status(
            "needs_operator", "needs_operator",
            f"{failure}; rollback did not restore the snapshot: " + "; ".join(problems),
        )
        await workflow.wait_condition(lambda: self._resolution is not None)
        assert self._resolution is not None
        return await self._finish(self._resolution.outcome,
                                  f"resolved by {self._resolution.by}: {self._resolution.note}")

    async def _gate(self) -> None:
        """Stop at a step boundary while paused; raise when the plan was aborted."""
        if self._abort_by is not None:
            raise _Aborted()
        if self._paused_by or self._incident_paused:
            previous = (self._status, self._phase, self._detail)
            who = "incident pause" if self._incident_paused else f"paused by {self._paused_by}"
            await self._set_status(self._status, "paused", who)
            await workflow.wait_condition(
                lambda: self._abort_by is not None or not (self._paused_by or self._incident_paused))
            if self._abort_by is not None:
                raise _Aborted()
            await self._set_status(*previous)

    async def _run_step(self, activity_name: str, seq: int, running: str, done: str,
                        retry: RetryPolicy) -> None:
        self._mark(seq, running)
        try:
            await workflow.execute_activity(
                activity_name,
                ChangeStepInput(plan_id=self._plan_id, seq=seq),
                start_to_close_timeout=timedelta(minutes=2),
                heartbeat_timeout=timedelta(seconds=10),
                retry_policy=retry,
            )
        except ActivityError as err:
            self._mark(seq, "failed" if running == "applying" else "undo_failed", _failure_text(err))
            raise
        self._mark(seq, done)

    async def _device_activity(self, name: str, device_id: str, retry: RetryPolicy) -> VerifyResult:
        return await workflow.execute_activity(
            name,
            DeviceStepInput(plan_id=self._plan_id, device_id=device_id),
            result_type=VerifyResult,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=retry,
        )

    def _mark(self, seq: int, status: str, error: str | None = None) -> None:
        self._steps[seq] = self._steps[seq].model_copy(update={"status": status, "error": error})

    def _set_batch(self, index: int, status: str) -> None:
        self._batches[index] = self._batches[index].model_copy(update={"status": status})

    async def _set_status(self, status: str, phase: str, detail: str | None) -> None:
        self._status, self._phase, self._detail = status, phase, detail
        if self._search_attributes:
            workflow.upsert_search_attributes([PHASE.value_set(phase)])
        batches = ", ".join(f"{b.label}: {b.status}" for b in self._batches)
        workflow.set_current_details(
            f"**{status}** ({phase})" + (f": {detail}" if detail else "")
            + (f"\n\nBatches: {batches}" if batches else "")
        )
        await workflow.execute_activity(
            "record_plan_status",
            PlanStatusInput(plan_id=self._plan_id, status=status, detail=detail,
                            workflow_id=workflow.info().workflow_id, progress=self.progress()),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )

    async def _finish(self, status: str, detail: str | None) -> PlanApplyResult:
        await self._set_status(status, "done", detail)
        return PlanApplyResult(plan_id=self._plan_id, status=status, detail=detail)

    @workflow.query
    def progress(self) -> PlanProgress:
        return PlanProgress(plan_id=self._plan_id, status=self._status, phase=self._phase,
                            detail=self._detail, steps=list(self._steps.values()),
                            batches=list(self._batches), approved_by=list(self._approved_by),
                            paused=bool(self._paused_by or self._incident_paused))

    @workflow.update
    def approve(self, approval: ApproveInput) -> ApprovalResult:
        self._approved_by.append(approval.approver)
        return ApprovalResult(plan_id=self._plan_id, approved_by=list(self._approved_by), approved=True)

    @approve.validator
    def _validate_approval(self, approval: ApproveInput) -> None:
        if self._status != "awaiting_approval":
            raise ValueError(f"plan {self._plan_id} is not waiting for approval (it is {self._status})")
        if approval.plan_hash != self._plan_hash:
            raise ValueError("plan_hash does not match the plan being applied; review the current plan")
        if not APPROVER_ROLES & set(approval.roles):
            raise ValueError("approving needs the approver or admin role")
        if self._approval_mode == "four_eyes" and approval.approver == self._author:
            raise ValueError("in prod the author of a plan cannot approve it; ask another approver")

    @workflow.signal
    def pause(self, control: ControlInput) -> None:
        if control.incident:
            self._incident_paused = True
        else:
            self._paused_by = control.by

    @workflow.signal
    def resume(self, control: ControlInput) -> None:
        if control.incident:
            self._incident_paused = False
        else:
            self._paused_by = None

    @workflow.signal
    def abort(self, control: ControlInput) -> None:
        """Stop at the next step boundary and undo everything this plan changed."""
        self._abort_by = control.by

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
