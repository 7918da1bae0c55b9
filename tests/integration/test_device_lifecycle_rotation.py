"""Credential rotation under faults: every failure ends with one working credential that tikflow stores."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.devices import DeviceLifecycleActivities, activities_of
from storage.crypto import KeyRing
from storage.models import Credential
from tests.support.lifecycle import Stack, lifecycle_stack

ROTATION_STEPS = ["prepare_credential", "install_credential", "check_credential",
                  "activate_credential", "disable_old_credential"]


def inject_fault(step: str, when: str) -> Callable[[DeviceLifecycleActivities], list]:
    """Return an activity list whose ``step`` fails once, before or after doing its work."""

    def build(handler: DeviceLifecycleActivities) -> list:
        fired = False
        original = getattr(handler, step)

        async def faulty(argument):  # type: ignore[no-untyped-def]
            nonlocal fired
            if not fired and when == "before":
                fired = True
                raise ApplicationError(f"injected fault before {step}", type="InjectedFault",
                                       non_retryable=True)
            result = await original(argument)
            if not fired:
                fired = True
                raise ApplicationError(f"injected fault after {step}", type="InjectedFault",
                                       non_retryable=True)
            return result

        # Resolved types, so Temporal converts the argument to the model the activity expects.
        hints = typing.get_type_hints(original)
        parameter = next(name for name in hints if name != "return")
        faulty.__annotations__ = {"argument": hints[parameter], "return": hints.get("return")}
        faulty = activity.defn(name=step)(faulty)
        return [faulty if getattr(fn, "__name__", "") == step else fn for fn in activities_of(handler)]

    return build


async def credentials_of(stack: Stack, device_id: str) -> list[Credential]:
    async with stack.db.session() as session:
        return list((await session.scalars(select(Credential).where(
            Credential.device_id == device_id).order_by(Credential.generation))).all())


async def assert_one_working_credential(stack: Stack, device_id: str, device: str = "r1") -> Credential:
    """Exactly one credential is active, it logs in on the router, and no other held one does."""
    keys = KeyRing(stack.master_key)
    state = stack.fleet.device(device).state
    credentials = await credentials_of(stack, device_id)
    active = [c for c in credentials if c.state == "active"]
    assert len(active) == 1, [(c.username, c.generation, c.state) for c in credentials]
    working = [c for c in credentials
               if state.authenticate(c.username, keys.decrypt(c.secret_ciphertext, c.key_id))]
    assert [c.id for c in working] == [active[0].id]
    # No account that tikflow created is left enabled unless it is the active one.
    enabled = [item["name"] for item in state.table("/user").matching({})
               if item.get("name", "").startswith("tikflow") and item.get("disabled") != "true"]
    assert enabled == [active[0].username]
    return active[0]


async def registered(stack: Stack, name: str = "rot") -> str:
    started = await stack.register(name)
    result = await stack.wait(started["device_id"], started["workflow_id"])
    assert result["status"] == "active", result
    return started["device_id"]


async def rotate(stack: Stack, device_id: str, policy: str) -> dict:
    response = await stack.http.post(f"/api/v1/devices/{device_id}/rotate-credentials",
                                     json={"policy": policy})
    assert response.status_code == 202, response.text
    return await stack.wait(device_id, response.json()["workflow_id"])


@pytest.mark.parametrize("policy", ["same-user", "new-user"])
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", ROTATION_STEPS)
async def test_rotation_fault_leaves_one_working_credential(
    database_url: str, temporal_server, tmp_path, step: str, when: str, policy: str,
) -> None:
    """A fault before or after any rotation step ends with exactly one working, held credential."""
    async with lifecycle_stack(database_url, temporal_server.address, tmp_path, devices=1,
                               activities=inject_fault(step, when)) as stack:
        device_id = await registered(stack)

        result = await rotate(stack, device_id, policy)

        assert result["status"] in ("rotated", "rolled_back", "failed"), result
        assert f"injected fault {when} {step}" in result["detail"]
        await assert_one_working_credential(stack, device_id)
        # The device keeps working for tikflow: a second rotation succeeds.
        assert (await rotate(stack, device_id, policy))["status"] == "rotated"
        await assert_one_working_credential(stack, device_id)


@pytest.fixture
async def stack(database_url: str, temporal_server, tmp_path) -> AsyncIterator[Stack]:
    async with lifecycle_stack(database_url, temporal_server.address, tmp_path, devices=1) as running:
        yield running


async def test_rotation_rejected_by_router_rolls_back(stack: Stack) -> None:
    """A router that refuses the password change keeps the old credential active."""
    device_id = await registered(stack)
    stack.fleet.device("r1").faults.trap_on("/user/set", "failure: not enough permissions (9)")

    result = await rotate(stack, device_id, "same-user")

    assert result["status"] == "rolled_back"
    assert "not enough permissions" in result["detail"]
    active = await assert_one_working_credential(stack, device_id)
    assert active.generation == 1
    assert [c.state for c in await credentials_of(stack, device_id)] == ["active", "failed"]


async def test_rotation_of_unreachable_device_changes_nothing(stack: Stack) -> None:
    """When the router is down the old credential stays active and the new one stays pending."""
    device_id = await registered(stack)
    await stack.fleet.device("r1").stop()

    result = await rotate(stack, device_id, "same-user")

    assert result["status"] == "needs_operator"
    assert "unreachable" in result["detail"]
    credentials = await credentials_of(stack, device_id)
    assert [(c.generation, c.state) for c in credentials] == [(1, "active"), (2, "pending")]
    assert stack.fleet.device("r1").state.authenticate("tikflow", stack.fleet.service_password)


async def test_rotation_refuses_new_password_for_builtin_admin(stack: Stack) -> None:
    """Same-user rotation of the built-in admin account is refused before anything changes."""
    started = await stack.register("adm", username="admin", password=stack.fleet.admin_password)
    await stack.wait(started["device_id"], started["workflow_id"])

    result = await rotate(stack, started["device_id"], "same-user")

    assert result["status"] == "failed"
    assert "new-user policy" in result["detail"]
    assert stack.fleet.device("r1").state.authenticate("admin", stack.fleet.admin_password)
    assert [c.state for c in await credentials_of(stack, started["device_id"])] == ["active"]


async def test_second_rotation_while_one_runs_is_refused(stack: Stack) -> None:
    """Starting a rotation while another one of the same device runs returns 409."""
    device_id = await registered(stack)
    stack.fleet.device("r1").faults.set_latency(0.3)

    first = await stack.http.post(f"/api/v1/devices/{device_id}/rotate-credentials")
    second = await stack.http.post(f"/api/v1/devices/{device_id}/rotate-credentials")

    assert first.status_code == 202
    assert second.status_code == 409
    assert "already exists" in second.json()["detail"] or "is running" in second.json()["detail"]
    await stack.wait(device_id, first.json()["workflow_id"])


async def test_decommission_refused_while_rotation_runs(stack: Stack) -> None:
    """Decommission waits for a running rotation: 409 until it ends, then it goes ahead."""
    device_id = await registered(stack)
    stack.fleet.device("r1").faults.set_latency(0.3)

    rotation = await stack.http.post(f"/api/v1/devices/{device_id}/rotate-credentials")
    refused = await stack.http.post(f"/api/v1/devices/{device_id}/decommission")
    await stack.wait(device_id, rotation.json()["workflow_id"])
    accepted = await stack.http.post(f"/api/v1/devices/{device_id}/decommission")

    assert refused.status_code == 409
    assert "rotation" in refused.json()["detail"]
    assert accepted.status_code == 202
    await stack.wait(device_id, accepted.json()["workflow_id"])
