"""PlanApply's control flow on the time-skipping test server, with activities faked at the boundary.

The devices and the database are replaced by in-memory activities with the real names, so these
tests pin the workflow's decisions: approval expiry, abort while paused, undo order, and
needs_operator when a rollback cannot restore the snapshot.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.models import (
    ApprovalPolicy,
    ChangeStepInput,
    ControlInput,
    DeadManInput,
    DeviceStepInput,
    LoadedPlan,
    PlanApplyInput,
    PlanRef,
    PlanStatusInput,
    ResolveInput,
    RolloutPolicy,
    StepRef,
    VerifyResult,
)
from workflows.plan_apply import PlanApplyWorkflow

TEST_SERVER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "temporal-test-server"


class FakeDevices:
    """Activities with the real names that record calls instead of touching devices."""

    def __init__(self, plan: LoadedPlan, *, failing_step: int | None = None,
                 rollback_verifies: bool = True) -> None:
        self.plan = plan
        self.failing_step = failing_step
        self.rollback_verifies = rollback_verifies
        self.calls: list[str] = []
        self.statuses: list[str] = []

    def activities(self) -> list:
        @activity.defn(name="load_plan_for_apply")
        async def load(ref: PlanRef) -> LoadedPlan:
            return self.plan

        @activity.defn(name="snapshot_and_check")
        async def snapshot(step: DeviceStepInput) -> VerifyResult:
            self.calls.append(f"snapshot {step.device_id}")
            return VerifyResult(device_id=step.device_id, ok=True)

        @activity.defn(name="apply_change")
        async def apply(step: ChangeStepInput) -> None:
            self.calls.append(f"apply {step.seq}")
            if step.seq == self.failing_step:
                raise ApplicationError("input does not match any value of interface",
                                       type="InvalidValue", non_retryable=True)

        @activity.defn(name="undo_change")
        async def undo(step: ChangeStepInput) -> None:
            self.calls.append(f"undo {step.seq}")

        @activity.defn(name="verify_applied")
        async def verify(step: DeviceStepInput) -> VerifyResult:
            return VerifyResult(device_id=step.device_id, ok=True)

        @activity.defn(name="verify_rolled_back")
        async def verify_rollback(step: DeviceStepInput) -> VerifyResult:
            problems = [] if self.rollback_verifies else [f"{step.device_id} /ip/address differs"]
            return VerifyResult(device_id=step.device_id, ok=not problems, problems=problems)

        @activity.defn(name="record_plan_status")
        async def record(update: PlanStatusInput) -> None:
            self.statuses.append(update.status)

        @activity.defn(name="arm_dead_man")
        async def arm(request: DeadManInput) -> None:
            self.calls.append(f"arm {request.device_id}")

        @activity.defn(name="disarm_dead_man")
        async def disarm(request: DeadManInput) -> None:
            self.calls.append(f"disarm {request.device_id}")

        return [load, snapshot, apply, undo, verify, verify_rollback, record, arm, disarm]


def make_plan(*, devices: int = 1, steps_per_device: int = 2, approval: str = "auto",
              timeout_seconds: int = 3600, on_failure: str = "rollback_batch") -> LoadedPlan:
    steps = [StepRef(seq=d * steps_per_device + s + 1, device_id=f"d{d}", path="/ip/address", action="add")
             for d in range(devices) for s in range(steps_per_device)]
    return LoadedPlan(plan_id="plan-test", author="alice", device_ids=[f"d{d}" for d in range(devices)],
                      environments=["prod"], risk="low", steps=steps, device_attempts=1,
                      rollout=RolloutPolicy(canary=1, batch_size=2, on_failure=on_failure),
                      approval=ApprovalPolicy(mode=approval, timeout_seconds=timeout_seconds),
                      # The time-skipping test server cannot register custom search attributes.
                      search_attributes=False)


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter)
    yield environment
    await environment.shutdown()


async def run(env: WorkflowEnvironment, fake: FakeDevices, drive=None) -> tuple[str, str | None]:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with Worker(env.client, task_queue=queue, workflows=[PlanApplyWorkflow],
                      activities=fake.activities()):
        handle: WorkflowHandle = await env.client.start_workflow(
            PlanApplyWorkflow.run, PlanApplyInput(plan_id="plan-test", plan_hash="h", requested_by="alice"),
            id=f"plan-apply:test-{uuid.uuid4().hex[:8]}", task_queue=queue)
        if drive is not None:
            await drive(handle)
        result = await handle.result()
    return result.status, result.detail


async def test_unapproved_plan_expires(env: WorkflowEnvironment):
    """A plan nobody approves ends aborted after the approval timeout; nothing is applied."""
    fake = FakeDevices(make_plan(approval="four_eyes", timeout_seconds=7200))
    status, detail = await run(env, fake)
    assert status == "aborted"
    assert "not approved within 7200 s" in detail
    assert fake.calls == []


async def test_failed_step_undoes_in_reverse(env: WorkflowEnvironment):
    """With rollback_all, step 3 failing after the canary undoes it and the canary, newest first."""
    fake = FakeDevices(make_plan(devices=2, on_failure="rollback_all"), failing_step=3)
    status, detail = await run(env, fake)
    assert status == "rolled_back"
    assert "input does not match any value of interface" in detail
    assert fake.calls[-3:] == ["undo 3", "undo 2", "undo 1"]
    assert "apply 4" not in fake.calls


async def test_failed_batch_keeps_canary(env: WorkflowEnvironment):
    """With rollback_batch, only the failed batch is undone and the plan ends failed."""
    fake = FakeDevices(make_plan(devices=2), failing_step=3)
    status, detail = await run(env, fake)
    assert status == "failed"
    assert "earlier batches stay applied on 1 device(s)" in detail
    assert [c for c in fake.calls if c.startswith("undo")] == ["undo 3"]


async def test_abort_while_paused_unwinds(env: WorkflowEnvironment):
    """Pausing before the rollout and aborting while paused ends aborted with nothing left applied."""
    fake = FakeDevices(make_plan(approval="one"))

    async def drive(handle: WorkflowHandle) -> None:
        await handle.signal(PlanApplyWorkflow.pause, ControlInput(by="sre"))
        await env.sleep(timedelta(seconds=1))
        from workflows.models import ApproveInput

        await handle.execute_update(PlanApplyWorkflow.approve,
                                    ApproveInput(plan_hash="h", approver="bob", roles=["approver"]))
        await env.sleep(timedelta(minutes=5))
        progress = await handle.query(PlanApplyWorkflow.progress)
        assert progress.paused
        await handle.signal(PlanApplyWorkflow.abort, ControlInput(by="sre"))

    status, detail = await run(env, fake, drive)
    assert status == "aborted"
    assert "aborted by sre" in detail
    assert not [c for c in fake.calls if c.startswith("apply")]


async def test_unverified_rollback_waits_for_operator(env: WorkflowEnvironment):
    """A rollback that does not match the snapshot waits in needs_operator for the resolve signal."""
    fake = FakeDevices(make_plan(), failing_step=2, rollback_verifies=False)

    async def drive(handle: WorkflowHandle) -> None:
        for _ in range(50):
            if (await handle.query(PlanApplyWorkflow.progress)).status == "needs_operator":
                break
            await env.sleep(timedelta(seconds=1))
        await handle.signal(PlanApplyWorkflow.resolve,
                            ResolveInput(outcome="rolled_back", note="fixed by hand", by="sre"))

    status, detail = await run(env, fake, drive)
    assert status == "rolled_back"
    assert "resolved by sre: fixed by hand" in detail
    assert "needs_operator" in fake.statuses
