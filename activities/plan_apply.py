"""Activities of the PlanApply workflow: every database and device side effect of an apply.

Each change activity is idempotent. It records ``applying`` before it touches the device and
``applied`` after, so a retry after a worker crash first looks at the device to tell whether the
earlier attempt got through, and never applies a change twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from inventory.devices import DeviceNotFound, DeviceSessions, Inventory
from planning.state import (
    fingerprint,
    item_properties,
    matches,
    same_content,
    stable_rows,
    writable,
)
from routeros.client import DeviceClient
from routeros.errors import DeviceError
from storage.audit import record_audit
from storage.db import Database
from storage.incident import is_paused
from storage.models import Device, Plan, PlanChange, Snapshot
from tikflow.metrics import WORKFLOWS
from tikflow.settings import Settings
from workflows.models import (
    ApprovalPolicy,
    ChangeStepInput,
    ChangeStepResult,
    DeadManInput,
    DeviceStepInput,
    LoadedPlan,
    PlanRef,
    PlanStatusInput,
    RolloutPolicy,
    StepRef,
    UndoResult,
    VerifyResult,
)

log = structlog.get_logger(__name__)

# Tables where order is meaningful: a re-added rule goes back to its old place.
ORDERED_PATHS = frozenset(
    {"/ip/firewall/filter", "/ip/firewall/nat", "/ip/firewall/mangle", "/ip/firewall/raw",
     "/ipv6/firewall/filter", "/ipv6/firewall/nat", "/ipv6/firewall/mangle", "/ipv6/firewall/raw"}
)
FINAL_STATUSES = frozenset({"applied", "rolled_back", "failed", "aborted", "needs_operator"})


def as_application_error(err: DeviceError, device: str) -> ApplicationError:
    """Carry a device error to the workflow with its retry decision."""
    return ApplicationError(f"{device}: {err.message}", type=type(err).__name__,
                            non_retryable=not err.retryable)


class PlanApplyActivities:
    def __init__(self, db: Database, inventory: Inventory, sessions: DeviceSessions,
                 settings: Settings) -> None:
        self.db = db
        self.inventory = inventory
        self.sessions = sessions
        self.settings = settings

    @asynccontextmanager
    async def _device(self, device_id: str) -> AsyncIterator[tuple[Device, DeviceClient]]:
        try:
            device = await self.inventory.find(device_id)
        except DeviceNotFound as err:
            raise ApplicationError(str(err), type="DeviceNotFound", non_retryable=True) from None
        try:
            async with heartbeating(), self.sessions.session(device) as client:
                yield device, client
        except DeviceError as err:
            raise as_application_error(err, device.name) from None

    @activity.defn
    async def load_plan_for_apply(self, ref: PlanRef) -> LoadedPlan:
        async with self.db.session() as session:
            plan = await session.get(Plan, ref.plan_id)
            if plan is None:
                raise ApplicationError(f"plan {ref.plan_id} does not exist", type="DeviceNotFound",
                                       non_retryable=True)
            if plan.plan_hash != ref.plan_hash:
                raise ApplicationError("plan hash does not match the stored plan",
                                       type="PlanHashMismatch", non_retryable=True)
            changes = (await session.scalars(
                select(PlanChange).where(PlanChange.plan_id == plan.id).order_by(PlanChange.seq)
            )).all()
            steps = [StepRef(seq=c.seq, device_id=c.device_id, path=c.path, action=c.action)
                     for c in changes]
        dead_man = await self._dead_man_devices(plan)
        return LoadedPlan(
            plan_id=plan.id,
            author=plan.author,
            device_ids=list(plan.device_ids),
            environments=list(plan.environments),
            risk=plan.risk,
            steps=steps,
            device_attempts=self.settings.routeros.retries,
            rollout=RolloutPolicy.model_validate(_rollout_fields(plan.rollout)),
            approval=ApprovalPolicy(mode=plan.approval_mode,
                                    timeout_seconds=self.settings.plans.approval_timeout_seconds),
            incident_paused=await is_paused(self.db),
            dead_man_devices=dead_man,
            dead_man_seconds=int(plan.rollout.get("dead_man_seconds", self.settings.plans.dead_man_seconds)),
        )

    async def _dead_man_devices(self, plan: Plan) -> list[str]:
        """Devices that get a dead-man switch: all of a high-risk plan's, unless turned off.

        Raises:
            ApplicationError: a device cannot run scheduler jobs (device-mode) and the plan
                does not carry the explicit override.
        """
        if plan.risk != "high" or not self.settings.plans.dead_man_for_high_risk:
            return []
        armed = []
        for device_id in plan.device_ids:
            device = await self.inventory.find(device_id)
            if device.capabilities.get("scheduler", True):
                armed.append(device_id)
            elif not plan.rollout.get("allow_without_dead_man"):
                raise ApplicationError(
                    f"{device.name} cannot run scheduler jobs (device-mode), so no dead-man switch "
                    "can guard this high-risk change; re-plan with allow_without_dead_man to accept "
                    "the risk", type="DeadManUnsupported", non_retryable=True)
        return armed

    @activity.defn
    async def snapshot_and_check(self, step: DeviceStepInput) -> VerifyResult:
        """Fail closed when the device changed since planning; else store a pre-apply snapshot."""
        async with self.db.session() as session:
            plan = await session.get(Plan, step.plan_id)
            existing = await session.scalar(select(Snapshot.id).where(
                Snapshot.plan_id == step.plan_id, Snapshot.device_id == step.device_id,
                Snapshot.reason == "pre-apply"))
        if existing is not None:
            return VerifyResult(device_id=step.device_id, ok=True)
        expected: dict[str, str] = plan.fingerprints.get(step.device_id, {})
        tables: dict[str, list[dict[str, str]]] = {}
        async with self._device(step.device_id) as (device, client):
            for path in expected:
                tables[path] = await client.print(path)
        changed = [path for path, digest in expected.items() if fingerprint(tables[path]) != digest]
        if changed:
            raise ApplicationError(
                f"{device.name} changed since the plan was made ({', '.join(changed)}); "
                "create a new plan from the current state",
                type="StalePlan", non_retryable=True,
            )
        async with self.db.session() as session:
            session.add(Snapshot(device_id=step.device_id, reason="pre-apply", plan_id=step.plan_id,
                                 tables=tables, sha256=fingerprint([{"t": str(sorted(tables.items()))}])))
        return VerifyResult(device_id=step.device_id, ok=True)

    async def _load_change(self, step: ChangeStepInput) -> PlanChange:
        async with self.db.session() as session:
            change = await session.scalar(select(PlanChange).where(
                PlanChange.plan_id == step.plan_id, PlanChange.seq == step.seq))
        if change is None:
            raise ApplicationError(f"plan {step.plan_id} has no step {step.seq}",
                                   type="DeviceNotFound", non_retryable=True)
        return change

    async def _update_change(self, change: PlanChange, **fields) -> None:
        async with self.db.session() as session:
            row = await session.get(PlanChange, change.id)
            for key, value in fields.items():
                setattr(row, key, value)

    async def _snapshot_ids(self, plan_id: str, device_id: str, path: str) -> set[str]:
        rows = (await self._snapshot_tables(plan_id, device_id)).get(path, [])
        return {row.get(".id", "") for row in rows}

    async def _snapshot_tables(self, plan_id: str, device_id: str) -> dict[str, list[dict[str, str]]]:
        async with self.db.session() as session:
            snapshot = await session.scalar(select(Snapshot).where(
                Snapshot.plan_id == plan_id, Snapshot.device_id == device_id,
                Snapshot.reason == "pre-apply"))
        return dict(snapshot.tables) if snapshot else {}

    @activity.defn
    async def apply_change(self, step: ChangeStepInput) -> ChangeStepResult:
        change = await self._load_change(step)
        if change.status == "applied":
            return ChangeStepResult(seq=step.seq, created_id=change.result.get("created_id"),
                                    already_applied=True)
        interrupted = change.status == "applying"
        await self._update_change(change, status="applying", error=None)
        try:
            async with self._device(change.device_id) as (device, client):
                created = await self._apply(change, client, interrupted=interrupted)
        except ApplicationError as err:
            await self._update_change(change, status="failed", error=err.message)
            raise
        result = {"created_id": created} if created else {}
        await self._update_change(change, status="applied", result=result)
        log.info("plan step applied", plan_id=step.plan_id, seq=step.seq, device_id=change.device_id,
                 path=change.path, action=change.action)
        return ChangeStepResult(seq=step.seq, created_id=created)

    async def _apply(self, change: PlanChange, client: DeviceClient, *, interrupted: bool) -> str | None:
        if change.action == "add":
            if interrupted:
                # The previous attempt may have added the item before the worker died.
                known = await self._snapshot_ids(change.plan_id, change.device_id, change.path)
                for row in await client.print(change.path):
                    if row.get(".id") not in known and matches(row, item_properties(change.values)):
                        return row[".id"]
            return await client.add(change.path, dict(change.values))
        if change.action == "set":
            for target in change.targets:
                await client.set(change.path, target["id"] or None, dict(change.values))
            return None
        present = {row.get(".id") for row in await client.print(change.path, proplist=[".id"])}
        ids = [t["id"] for t in change.targets if t["id"] in present]
        if ids:
            await client.remove(change.path, ids)
        return None

    @activity.defn
    async def undo_change(self, step: ChangeStepInput) -> UndoResult:
        """Undo a step if it was applied, fully or in part; a step never started is left alone."""
        change = await self._load_change(step)
        if change.status in ("pending", "undone"):
            return UndoResult(seq=step.seq, undone=False, note=f"step was {change.status}")
        async with self._device(change.device_id) as (device, client):
            changed = await self._undo(change, client)
        if not changed and change.status == "failed":
            # The device rejected the step and nothing of it landed: it stays "failed".
            return UndoResult(seq=step.seq, undone=False, note="nothing of the failed step was applied")
        await self._update_change(change, status="undone")
        return UndoResult(seq=step.seq, undone=changed)

    async def _undo(self, change: PlanChange, client: DeviceClient) -> bool:
        """Undo what of ``change`` is on the device; return whether anything was changed."""
        rows = await client.print(change.path)
        present = {row.get(".id") for row in rows}
        if change.action == "add":
            created = change.result.get("created_id")
            if created is None:
                known = await self._snapshot_ids(change.plan_id, change.device_id, change.path)
                planned = item_properties(change.values)
                matching = [r[".id"] for r in rows if r.get(".id") not in known and matches(r, planned)]
                created = matching[0] if matching else None
            if created and created in present:
                await client.remove(change.path, [created])
                return True
            return False
        if change.action == "set":
            for target in change.targets:
                before = target["before"]
                restore = {k: before[k] for k in change.values if k in before}
                if restore:
                    await client.set(change.path, target["id"] or None, restore)
                for key in (k for k in change.values if k not in before):
                    await client.command(f"{change.path}/unset",
                                         {".id": target["id"], "value-name": key} if target["id"]
                                         else {"value-name": key})
            return True
        restored = False
        snapshot = (await self._snapshot_tables(change.plan_id, change.device_id)).get(change.path, [])
        for target in change.targets:
            if target["id"] in present:
                continue
            values = writable(target["before"])
            if change.path in ORDERED_PATHS:
                following = _next_present_id(snapshot, target["id"], present)
                if following:
                    values["place-before"] = following
            new_id = await client.add(change.path, values)
            present.add(new_id)
            restored = True
        return restored

    @activity.defn
    async def verify_applied(self, step: DeviceStepInput) -> VerifyResult:
        async with self.db.session() as session:
            changes = (await session.scalars(select(PlanChange).where(
                PlanChange.plan_id == step.plan_id, PlanChange.device_id == step.device_id)
                .order_by(PlanChange.seq))).all()
        problems: list[str] = []
        async with self._device(step.device_id) as (device, client):
            for change in changes:
                rows = {r.get(".id"): r for r in await client.print(change.path)}
                problems.extend(_check_applied(change, rows))
        return VerifyResult(device_id=step.device_id, ok=not problems, problems=problems)

    @activity.defn
    async def arm_dead_man(self, request: DeadManInput) -> None:
        """Save a backup and schedule a job that restores it unless disarmed in time."""
        name = _dead_man_name(request.plan_id)
        async with self._device(request.device_id) as (device, client):
            jobs = await client.print("/system/scheduler", where={"name": name})
            if jobs:
                return
            await client.command("/system/backup/save", {"name": name, "dont-encrypt": "yes"})
            await client.add("/system/scheduler", {
                "name": name,
                "interval": f"{request.seconds}s",
                "on-event": f'/system scheduler remove [find name="{name}"]\n'
                            f'/system backup load name="{name}.backup" password=""',
                "policy": "read,write,policy,test,sensitive",
                "comment": f"tikflow dead-man switch for plan {request.plan_id}",
            })
        log.info("dead-man switch armed", plan_id=request.plan_id, device_id=request.device_id,
                 seconds=request.seconds)

    @activity.defn
    async def disarm_dead_man(self, request: DeadManInput) -> None:
        """Remove the restore job over a fresh session: proof the new configuration reaches the device."""
        from routeros.client import open_client

        device = await self.inventory.find(request.device_id)
        target = await self.inventory.target(device, self.settings)
        name = _dead_man_name(request.plan_id)
        try:
            client = await open_client(target)
            try:
                jobs = await client.print("/system/scheduler", where={"name": name}, proplist=[".id"])
                if jobs:
                    await client.remove("/system/scheduler", [j[".id"] for j in jobs])
                files = await client.print("/file", where={"name": f"{name}.backup"}, proplist=[".id"])
                if files:
                    await client.remove("/file", [f[".id"] for f in files])
            finally:
                await client.close()
        except DeviceError as err:
            raise as_application_error(err, device.name) from None
        log.info("dead-man switch disarmed", plan_id=request.plan_id, device_id=request.device_id)

    @activity.defn
    async def verify_rolled_back(self, step: DeviceStepInput) -> VerifyResult:
        """Compare every touched table with the pre-apply snapshot, ignoring only ids."""
        snapshot = await self._snapshot_tables(step.plan_id, step.device_id)
        problems: list[str] = []
        async with self._device(step.device_id) as (device, client):
            for path, before in snapshot.items():
                now = await client.print(path)
                if not same_content(now, before):
                    problems.append(f"{device.name} {path} differs from the pre-apply snapshot: "
                                    f"{_describe_difference(before, now)}")
        return VerifyResult(device_id=step.device_id, ok=not problems, problems=problems)

    @activity.defn
    async def record_plan_status(self, update: PlanStatusInput) -> None:
        async with self.db.session() as session:
            plan = await session.get(Plan, update.plan_id)
            plan.status = update.status
            plan.status_detail = update.detail
            if update.progress is not None:
                plan.progress = update.progress.model_dump(mode="json")
            if update.workflow_id:
                plan.workflow_id = update.workflow_id
            device_ids = list(plan.device_ids)
        if update.status in FINAL_STATUSES:
            WORKFLOWS.labels("PlanApply", update.status).inc()
            await record_audit(
                self.db, actor="temporal:PlanApply", action="workflow.plan-apply",
                result=update.status, plan_id=update.plan_id, device_ids=device_ids,
                detail=update.detail, workflow_id=update.workflow_id,
            )
        log.info("plan status", plan_id=update.plan_id, status=update.status,
                 workflow_id=update.workflow_id)


def _rollout_fields(rollout: dict) -> dict:
    return {k: v for k, v in rollout.items() if k in RolloutPolicy.model_fields}


def _check_applied(change: PlanChange, rows: dict[str | None, dict[str, str]]) -> list[str]:
    if change.action == "add":
        created = change.result.get("created_id")
        row = rows.get(created)
        if row is None or not matches(row, item_properties(change.values)):
            return [f"step {change.seq}: added item {created} is missing or differs in {change.path}"]
        return []
    if change.action == "set":
        problems = []
        for target in change.targets:
            row = rows.get(target["id"]) if target["id"] else next(iter(rows.values()), None)
            if row is None or not matches(row, change.values):
                problems.append(f"step {change.seq}: {change.path} {target['id'] or ''} does not hold "
                                "the values written")
        return problems
    return [f"step {change.seq}: {change.path} {t['id']} is still present"
            for t in change.targets if t["id"] in rows]


def _next_present_id(snapshot: list[dict[str, str]], item_id: str, present: set[str | None]) -> str | None:
    ids = [row.get(".id") for row in snapshot]
    if item_id not in ids:
        return None
    for candidate in ids[ids.index(item_id) + 1:]:
        if candidate in present:
            return candidate
    return None


def _describe_difference(before: list[dict[str, str]], now: list[dict[str, str]]) -> str:
    old = [writable(r) for r in stable_rows(before)]
    new = [writable(r) for r in stable_rows(now)]
    missing = [r for r in old if r not in new]
    extra = [r for r in new if r not in old]
    parts = []
    if missing:
        parts.append(f"missing {missing[:3]}")
    if extra:
        parts.append(f"unexpected {extra[:3]}")
    return ", ".join(parts) or "order differs"


def _dead_man_name(plan_id: str) -> str:
    return f"tikflow-rollback-{plan_id}"
