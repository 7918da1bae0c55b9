"""Multi-device targeting: pick devices by list, tag or environment and fan changes out to them.

A target is any combination of ``devices`` (ids or names), ``tag`` and ``environment``; a
device is targeted when it passes every selector given. Tag and environment select only
active devices, because a plan can change nothing else. A device named explicitly must be
active too, and the planner rejects it with a message when it is not.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from api.authz import authorize_device
from inventory.devices import ENVIRONMENTS, Inventory
from planning.model import ChangeRequest
from planning.validation import PlanValidationError
from storage.models import Device

MAX_TARGETS = 200


class TargetedChange(ChangeRequest):
    """A change request whose device may be left out to apply it to every target device."""

    device: str | None = Field(  # type: ignore[assignment]
        None, description="Device id or name; omit it to make the change on every target device")


def has_target(devices: Sequence[str] | None, tag: str | None, environment: str | None) -> bool:
    """Return whether any selector is given."""
    return bool(devices) or bool(tag) or bool(environment)


def select_devices(candidates: Sequence[Device], *, tag: str | None,
                   environment: str | None) -> list[Device]:
    """Return the candidates carrying ``tag`` and in ``environment``, whichever are given."""
    return [
        device for device in candidates
        if (tag is None or tag in (device.tags or []))
        and (environment is None or device.environment == environment)
    ]


async def resolve_targets(inventory: Inventory, *, devices: Sequence[str] | None, tag: str | None,
                          environment: str | None) -> list[Device]:
    """Return the target devices in a stable order, without duplicates.

    Raises:
        PlanValidationError: no selector was given, a selector is malformed, nothing matched,
            or the target is larger than ``MAX_TARGETS``.
        DeviceNotFound: a device named in ``devices`` is not registered.
    """
    if not has_target(devices, tag, environment):
        raise PlanValidationError('no target devices; give devices (e.g. ["r1"]), tag or environment')
    if environment is not None and environment not in ENVIRONMENTS:
        raise PlanValidationError(f"environment {environment!r} is unknown; use one of "
                                  f"{', '.join(ENVIRONMENTS)}")
    if tag is not None and not tag.strip():
        raise PlanValidationError("tag is empty; give a tag name or leave tag out")

    if devices:
        named = [await inventory.find(ref) for ref in dict.fromkeys(devices)]
        candidates = list({device.id: device for device in named}.values())
    else:
        candidates = await inventory.list(environment=environment, status="active")
    selected = select_devices(candidates, tag=tag, environment=environment)

    if not selected:
        raise PlanValidationError(_nothing_matched(devices, tag, environment))
    if len(selected) > MAX_TARGETS:
        raise PlanValidationError(f"the target matches {len(selected)} devices; a plan reaches at most "
                                  f"{MAX_TARGETS}, so narrow it with tag or environment")
    return selected


async def resolve_authorized_targets(inventory: Inventory, *, devices: Sequence[str] | None,
                                     tag: str | None, environment: str | None) -> list[Device]:
    """Resolve the target devices and check the current tool call may use each of them.

    The generic argument check of a tool call only reads ``device`` and ``changes[].device``,
    so devices reached by list, tag or environment are checked here, one by one.

    Raises:
        AccessDenied: the caller's roles do not allow the tool on a target's environment.
    """
    targets = await resolve_targets(inventory, devices=devices, tag=tag, environment=environment)
    for device in targets:
        await authorize_device(device)
    return targets


def expand_changes(changes: Sequence[ChangeRequest], targets: Sequence[Device]) -> list[ChangeRequest]:
    """Turn each change without a device into one change per target device, keeping order.

    Raises:
        PlanValidationError: a change names no device and no target was given.
    """
    expanded: list[ChangeRequest] = []
    for seq, change in enumerate(changes, start=1):
        if change.device:
            expanded.append(ChangeRequest(**change.model_dump()))
            continue
        if not targets:
            raise PlanValidationError(f"change {seq} names no device; set its device, or give "
                                      "devices, tag or environment for the whole plan")
        fields = change.model_dump(exclude={"device"})
        expanded.extend(ChangeRequest(device=target.id, **fields) for target in targets)
    return expanded


def _nothing_matched(devices: Sequence[str] | None, tag: str | None, environment: str | None) -> str:
    parts = []
    if devices:
        parts.append(f"devices {list(devices)}")
    if tag:
        parts.append(f"tag {tag!r}")
    if environment:
        parts.append(f"environment {environment!r}")
    return (f"no active device matches {' and '.join(parts)}; check the tag and environment with "
            "device.list.v1")
