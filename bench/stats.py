"""Summaries of timing samples and the round-trip floor of a rollout.

Pure functions only, so the harness's arithmetic is unit-tested without servers.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass


def percentile(samples: list[float], fraction: float) -> float:
    """Return the ``fraction`` percentile (0 to 1) by linear interpolation between ranks.

    Raises:
        ValueError: ``samples`` is empty or ``fraction`` lies outside 0..1.
    """
    if not samples:
        raise ValueError("percentile of no samples: measure at least one call")
    if not 0 <= fraction <= 1:
        raise ValueError(f"invalid fraction {fraction}: expected 0 to 1")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * fraction
    lower = math.floor(position)
    upper = math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class Summary:
    """Median and 95th percentile of a series of call durations, in milliseconds."""

    calls: int
    median_ms: float
    p95_ms: float

    def to_dict(self) -> dict[str, float]:
        """Return the fields as JSON-ready data."""
        return asdict(self)


def summarize(seconds: list[float]) -> Summary:
    """Summarize call durations given in seconds."""
    return Summary(
        calls=len(seconds),
        median_ms=statistics.median(seconds) * 1000,
        p95_ms=percentile(seconds, 0.95) * 1000,
    )


def ratio(value: float, baseline: float) -> float:
    """Return ``value / baseline``; a zero baseline gives infinity instead of raising."""
    return value / baseline if baseline > 0 else math.inf


@dataclass(frozen=True)
class RolloutShape:
    """What the PlanApply workflow does on the devices for one plan, and how parallel.

    Attributes:
        devices: Devices in the plan.
        changes_per_device: Plan steps per device, applied one after another.
        canary: Devices changed alone before the first batch.
        batch_size: Devices per batch after the canary.
        max_parallel: Devices of a batch changed at the same time (rollout policy).
        activity_slots: Activities one worker runs at the same time
            (``max_concurrent_activities``).
        delay: Seconds the simulator adds before every reply.
        login_round_trips: Round trips to open a session (API ``/login``), paid once per device
            because the worker's pool keeps the connection.
        preflight_round_trips: Device commands of ``snapshot_and_check``: one print per
            table the plan fingerprinted.
        apply_round_trips: Device commands of one ``apply_change`` step (1 for an add).
        verify_round_trips_per_change: Device commands of ``verify_applied`` per change: one
            print of the changed table.
    """

    devices: int
    changes_per_device: int
    canary: int
    batch_size: int
    max_parallel: int
    activity_slots: int
    delay: float
    login_round_trips: int = 1
    preflight_round_trips: int = 1
    apply_round_trips: int = 1
    verify_round_trips_per_change: int = 1

    def batch_sizes(self) -> list[int]:
        """Return the device count of each step: the canary, then the batches, in order.

        Mirrors ``workflows.plan_apply.plan_batches``: a one-device plan has no canary.
        """
        canary = min(self.canary, self.devices) if self.devices > 1 else 0
        sizes = [canary] if canary else []
        rest = self.devices - canary
        sizes += [min(self.batch_size, rest - start) for start in range(0, rest, self.batch_size)]
        return sizes

    def total_round_trips(self) -> int:
        """Return how many delayed replies the devices send during the whole apply."""
        per_device = (self.login_round_trips + self.preflight_round_trips
                      + self.changes_per_device * self.apply_round_trips
                      + self.changes_per_device * self.verify_round_trips_per_change)
        return self.devices * per_device


@dataclass(frozen=True)
class Floor:
    """Lowest wall time the delay allows, split by phase, in seconds."""

    preflight: float
    apply: float
    health_gates: float

    @property
    def total(self) -> float:
        """Sum of the phases."""
        return self.preflight + self.apply + self.health_gates

    def to_dict(self) -> dict[str, float]:
        """Return the phases and the total as JSON-ready data."""
        return {**asdict(self), "total": self.total}


def rollout_floor(shape: RolloutShape) -> Floor:
    """Return the wall-time floor of a rollout: round trips on the critical path times the delay.

    Preflight visits the devices one after another, each paying its login and its snapshot
    prints. In each batch the devices apply their changes one by one, ``max_parallel`` devices
    (and at most ``activity_slots``) at a time, so a batch takes one wave of change round trips
    per group of that many devices. The health gate then reads every device of the batch at
    once, limited only by the activity slots. Workflow, Temporal and database time are not part
    of the floor, so ``wall / floor`` shows what they add.
    """
    preflight = shape.devices * (shape.login_round_trips + shape.preflight_round_trips) * shape.delay
    apply_parallel = max(1, min(shape.max_parallel, shape.activity_slots))
    apply = 0.0
    gates = 0.0
    for size in shape.batch_sizes():
        waves = math.ceil(size / apply_parallel)
        apply += waves * shape.changes_per_device * shape.apply_round_trips * shape.delay
        gate_waves = math.ceil(size / max(1, shape.activity_slots))
        gates += gate_waves * shape.changes_per_device * shape.verify_round_trips_per_change * shape.delay
    return Floor(preflight=preflight, apply=apply, health_gates=gates)
