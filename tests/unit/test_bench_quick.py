"""The benchmark harness's arithmetic and report writer, on fixed inputs and without servers."""

from __future__ import annotations

import json
import math

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from bench import sections
from bench.fleet_process import CountingFaults, build_fleet, handle
from bench.history import activity_spans, activity_timing, phase_seconds
from bench.latency import WARMUP_CALLS, compare_to_first, time_interleaved
from bench.report import render_markdown, write_results
from bench.rollout import PlanRun, plan_changes, rollout_result, split_devices
from bench.run import FULL, QUICK, describe_error, parse_arguments
from bench.stats import RolloutShape, percentile, ratio, rollout_floor, summarize
from simulator.runner import SAMPLES
from workflows.models import RolloutPolicy
from workflows.plan_apply import plan_batches


def shape(**overrides) -> RolloutShape:
    values = dict(devices=200, changes_per_device=5, canary=1, batch_size=10, max_parallel=10,
                  activity_slots=50, delay=0.02, preflight_round_trips=2)
    return RolloutShape(**(values | overrides))


def test_bench_percentile_interpolates_between_ranks() -> None:
    """The 95th percentile of 1..21 is 20, the median of an even series lies between two."""
    assert percentile([float(n) for n in range(1, 22)], 0.95) == pytest.approx(20.0)
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == pytest.approx(2.5)
    assert percentile([7.0], 0.95) == 7.0


def test_bench_percentile_rejects_bad_input() -> None:
    """No samples, or a fraction outside 0..1, raise ValueError naming the fix."""
    with pytest.raises(ValueError, match="at least one call"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="expected 0 to 1"):
        percentile([1.0], 95)


def test_bench_summary_reports_milliseconds() -> None:
    """summarize turns seconds into median and p95 milliseconds."""
    summary = summarize([0.001, 0.002, 0.003])
    assert summary.calls == 3
    assert summary.median_ms == pytest.approx(2.0)
    assert summary.p95_ms == pytest.approx(2.9)


def test_bench_ratio_of_zero_baseline_is_infinite() -> None:
    """A zero baseline gives infinity instead of ZeroDivisionError."""
    assert ratio(3.0, 1.5) == pytest.approx(2.0)
    assert ratio(1.0, 0.0) == math.inf


@pytest.mark.parametrize("devices,canary,batch_size", [(200, 1, 10), (20, 1, 10), (1, 1, 10),
                                                       (7, 0, 3), (12, 3, 5), (5, 10, 2)])
def test_bench_batches_match_workflow(devices: int, canary: int, batch_size: int) -> None:
    """The floor splits devices into the same canary and batches as the PlanApply workflow."""
    ids = [f"d{index}" for index in range(devices)]
    policy = RolloutPolicy(canary=canary, batch_size=batch_size)
    expected = [len(batch) for _, batch in plan_batches(ids, policy)]
    assert shape(devices=devices, canary=canary, batch_size=batch_size).batch_sizes() == expected


def test_bench_floor_of_default_rollout() -> None:
    """200 devices, batches of 10: sequential preflight dominates, each of 21 steps costs 2 x 5 trips."""
    floor = rollout_floor(shape())
    assert floor.preflight == pytest.approx(200 * 3 * 0.02)
    assert floor.apply == pytest.approx(21 * 5 * 0.02)
    assert floor.health_gates == pytest.approx(21 * 5 * 0.02)
    assert floor.total == pytest.approx(12.0 + 2.1 + 2.1)
    assert floor.to_dict()["total"] == pytest.approx(floor.total)


def test_bench_floor_counts_waves_of_max_parallel() -> None:
    """A batch of 50 with max_parallel 20 applies in three waves; its gate reads in one."""
    floor = rollout_floor(shape(devices=51, batch_size=50, max_parallel=20, delay=1.0))
    assert floor.apply == pytest.approx(5 * 1 + 3 * 5)
    assert floor.health_gates == pytest.approx(5 + 5)


def test_bench_floor_is_limited_by_activity_slots() -> None:
    """With max_parallel above the worker's activity slots, the slots set the waves."""
    floor = rollout_floor(shape(devices=100, canary=0, batch_size=100, max_parallel=100,
                                activity_slots=50, delay=1.0))
    assert floor.apply == pytest.approx(2 * 5)
    assert floor.health_gates == pytest.approx(2 * 5)


def test_bench_round_trips_per_device() -> None:
    """Each device costs a login, its preflight prints, one trip per add and one verify print per change."""
    assert shape().total_round_trips() == 200 * (1 + 2 + 5 + 5)
    assert shape(devices=20).total_round_trips() == 260


def plan_run(devices: int, wall: float) -> PlanRun:
    return PlanRun(shape=shape(devices=devices), wall=wall, create_seconds=1.5,
                   replies=shape(devices=devices).total_round_trips(),
                   commands={"/ip/address/add": devices * 5}, risk="medium")


def test_bench_rollout_result_ratio() -> None:
    """The rollout record divides the wall time by the floor total."""
    record = rollout_result([plan_run(20, 7.0)])
    floor = rollout_floor(shape(devices=20))
    assert record["floor_seconds"]["total"] == pytest.approx(floor.total)
    assert record["wall_to_floor"] == pytest.approx(7.0 / floor.total)
    assert record["round_trips_expected"] == 260
    assert record["round_trips_counted"] == 260


def test_bench_rollout_result_sums_plans() -> None:
    """Two plans add up: devices, wall time, floor phases, round trips and commands."""
    record = rollout_result([plan_run(100, 20.0), plan_run(100, 30.0)])
    single = rollout_floor(shape(devices=100))
    assert record["shape"]["devices"] == 200
    assert record["wall_seconds"] == pytest.approx(50.0)
    assert record["floor_seconds"]["preflight"] == pytest.approx(2 * single.preflight)
    assert record["floor_seconds"]["total"] == pytest.approx(2 * single.total)
    assert record["wall_to_floor"] == pytest.approx(50.0 / (2 * single.total))
    assert record["round_trips_expected"] == 2 * 100 * 13
    assert record["commands_counted"] == {"/ip/address/add": 1000}
    assert [plan["devices"] for plan in record["plans"]] == [100, 100]


def test_bench_split_keeps_devices_whole() -> None:
    """200 devices of 5 changes fill two plans of 500; a remainder gets a plan of its own."""
    names = [f"r{index}" for index in range(1, 202)]
    groups = split_devices(names, 5, 500)
    assert [len(group) for group in groups] == [100, 100, 1]
    assert sum(groups, []) == names
    assert split_devices(["r1"], 600, 500) == [["r1"]]


def test_bench_plan_changes_per_device() -> None:
    """The rollout plan adds five distinct addresses on every device."""
    changes = plan_changes(["r1", "r2"])
    assert len(changes) == 10
    assert {c["values"]["address"] for c in changes if c["device"] == "r2"} == {
        f"10.250.{index}.1/24" for index in range(5)}


def test_bench_counting_faults_count_replies_and_commands() -> None:
    """Every delayed reply and every command is counted, and clearing faults keeps the counts."""
    faults = CountingFaults()
    faults.set_latency(0.02)
    assert faults.reply_delay() == pytest.approx(0.02)
    assert faults.trap_for("/ip/address/print") is None
    faults.clear()
    assert faults.latency == 0.0
    assert faults.replies == 1
    assert faults.commands == {"/ip/address/print": 1}


def test_bench_fleet_control_lines() -> None:
    """The fleet process sets latency on every device, reports counts, resets them and rejects unknown ops."""
    fleet = build_fleet(2, ("api",), SAMPLES / "lab-router.rsc")
    assert handle(fleet, {"op": "latency", "seconds": 0.02}) == {"ok": True}
    assert all(device.faults.latency == 0.02 for device in fleet.devices)
    fleet.devices[0].faults.reply_delay()
    assert handle(fleet, {"op": "counts"})["counts"] == {"r1": 1, "r2": 0}
    handle(fleet, {"op": "reset"})
    assert handle(fleet, {"op": "counts"})["counts"] == {"r1": 0, "r2": 0}
    assert "unknown op" in handle(fleet, {"op": "explode"})["error"]


def fixed_results() -> dict:
    rows = {"direct librouteros (api)": {"calls": 3, "median_ms": 0.5, "p95_ms": 0.8,
                                         "median_ratio": 1.0, "p95_ratio": 1.0},
            "tikflow api": {"calls": 3, "median_ms": 0.6, "p95_ms": 1.2,
                            "median_ratio": 1.2, "p95_ratio": 1.5}}
    record = rollout_result([plan_run(20, 7.0)])
    return {
        "mode": "quick",
        "machine": {"cpu_count": 2, "python": "3.11.7", "date_utc": "2026-12-04 21:00",
                    "git_sha": "abc123", "git_dirty": False},
        "benchmarks": {
            "transports": sections.transports(rows, 3),
            "rollout": sections.rollout(record, "sqlite"),
            "fleet": sections.failed("fleet", "RuntimeError: no ports left"),
        },
    }


def test_bench_markdown_has_machine_and_tables() -> None:
    """The page lists the machine, one table per benchmark with its script, and failures as text."""
    page = render_markdown(fixed_results())
    assert "| cpu_count | 2 |" in page
    assert "| git_sha | abc123 |" in page
    assert "| git_dirty | no |" in page
    assert "Script: `bench/latency.py" in page
    assert "| tikflow api | 3 | 0.6 | 1.2 | 1.2 | 1.5 |" in page
    assert "| **wall / floor** | 3.89 |" in page
    assert "**Failed:** RuntimeError: no ports left" in page


def test_bench_results_written_as_json_and_markdown(tmp_path) -> None:
    """write_results stores the same data as JSON and renders the Markdown page beside it."""
    results = fixed_results()
    json_path, markdown_path = write_results(results, tmp_path)
    assert json.loads(json_path.read_text()) == results
    assert markdown_path.read_text() == render_markdown(results)


def test_bench_arguments_select_sizes_and_benchmarks() -> None:
    """--only is repeatable and checked, and the quick sizes are smaller than the full ones."""
    arguments = parse_arguments(["--quick", "--only", "rollout", "--only", "mcp"])
    assert arguments.quick
    assert arguments.only == ["rollout", "mcp"]
    with pytest.raises(SystemExit):
        parse_arguments(["--only", "everything"])
    assert QUICK.rollout_devices < FULL.rollout_devices
    assert QUICK.fleet_devices < FULL.fleet_devices


def test_bench_error_text_unwraps_groups() -> None:
    """A failure inside a task group is reported by its own type and message."""
    group = ExceptionGroup("unhandled errors in a TaskGroup", [RuntimeError("rate limit exceeded")])
    assert describe_error(group) == "RuntimeError: rate limit exceeded"
    assert describe_error(ValueError("bad")) == "ValueError: bad"


async def test_bench_interleaved_series_take_turns() -> None:
    """Each series warms up first, then the series alternate call by call."""
    order: list[str] = []

    def recorder(name: str):
        async def call() -> None:
            order.append(name)
        return call

    durations = await time_interleaved({"a": recorder("a"), "b": recorder("b")}, 3)
    assert order[:2 * WARMUP_CALLS] == ["a"] * WARMUP_CALLS + ["b"] * WARMUP_CALLS
    assert order[2 * WARMUP_CALLS:] == ["a", "b"] * 3
    assert [len(seconds) for seconds in durations.values()] == [3, 3]


def test_bench_ratios_relative_to_first_series() -> None:
    """The first series is the baseline: ratio 1, and the others divide by it."""
    rows = compare_to_first({"direct": [0.001, 0.001], "tool": [0.003, 0.003]})
    assert rows["direct"]["median_ratio"] == pytest.approx(1.0)
    assert rows["tool"]["median_ratio"] == pytest.approx(3.0)
    assert rows["tool"]["p95_ms"] == pytest.approx(3.0)


def history_event(event_id: int, event_type: int, seconds: float, **attributes) -> HistoryEvent:
    event = HistoryEvent(event_id=event_id, event_type=event_type, **attributes)
    event.event_time.FromNanoseconds(int(seconds * 1e9))
    return event


def activity_events(first_id: int, name: str, scheduled: float, started: float,
                    completed: float) -> list[HistoryEvent]:
    return [
        history_event(first_id, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, scheduled,
                      activity_task_scheduled_event_attributes={"activity_type": {"name": name}}),
        history_event(first_id + 1, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED, started,
                      activity_task_started_event_attributes={"scheduled_event_id": first_id}),
        history_event(first_id + 2, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, completed,
                      activity_task_completed_event_attributes={"scheduled_event_id": first_id}),
    ]


def test_bench_history_phases_and_timing() -> None:
    """Activity events pair up by scheduled id; phases span first schedule to last completion."""
    events = (activity_events(1, "snapshot_and_check", 100.0, 100.01, 100.07)
              + activity_events(4, "snapshot_and_check", 100.08, 100.09, 100.15)
              + activity_events(7, "apply_change", 101.0, 101.02, 101.05)
              + activity_events(10, "verify_applied", 101.1, 101.2, 101.3)
              + [history_event(13, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, 102.0,
                               activity_task_scheduled_event_attributes={
                                   "activity_type": {"name": "apply_change"}})])
    spans = activity_spans(events)
    assert [span.name for span in spans] == ["snapshot_and_check", "snapshot_and_check",
                                             "apply_change", "verify_applied"]
    phases = phase_seconds(spans)
    assert phases["preflight"] == pytest.approx(0.15)
    assert phases["batches"] == pytest.approx(0.3)
    timing = activity_timing(spans)
    assert timing["snapshot_and_check"]["count"] == 2
    assert timing["snapshot_and_check"]["median_schedule_to_start_ms"] == pytest.approx(10.0)
    assert timing["snapshot_and_check"]["median_start_to_close_ms"] == pytest.approx(60.0)
    assert timing["verify_applied"]["median_start_to_close_ms"] == pytest.approx(100.0)


def test_bench_history_without_activities() -> None:
    """A history without activities gives zero-length phases instead of raising."""
    assert phase_seconds([]) == {"preflight": 0.0, "batches": 0.0}
    assert activity_timing([]) == {}


def test_bench_note_from_option_or_environment(monkeypatch) -> None:
    """The machine note comes from --note, else from TIKFLOW_BENCH_NOTE, else is absent."""
    monkeypatch.delenv("TIKFLOW_BENCH_NOTE", raising=False)
    assert parse_arguments([]).note is None
    monkeypatch.setenv("TIKFLOW_BENCH_NOTE", "2 cores, shared")
    assert parse_arguments([]).note == "2 cores, shared"
    assert parse_arguments(["--note", "idle machine"]).note == "idle machine"
