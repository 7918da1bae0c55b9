"""Turn each benchmark's raw record into a report section: title, method, table and data.

A section is a dict with ``title``, ``script``, ``method``, ``columns``, ``rows`` (cells in
column order), optional ``notes`` and the raw ``data``; ``bench.report`` renders it.
"""

from __future__ import annotations

from typing import Any

FLEET_MEMORY_TARGET_MIB = 1024
FLEET_READY_TARGET_SECONDS = 10

LATENCY_COLUMNS = ["series", "calls", "median ms", "p95 ms", "median / direct", "p95 / direct"]


def _latency_rows(rows: dict[str, dict[str, Any]]) -> list[list[Any]]:
    return [[name, row["calls"], row["median_ms"], row["p95_ms"], row["median_ratio"], row["p95_ratio"]]
            for name, row in rows.items()]


def transports(rows: dict[str, dict[str, Any]], calls: int) -> dict[str, Any]:
    """Section of benchmark 1: read latency per tikflow transport against direct librouteros."""
    return {
        "title": "1. Read latency per transport",
        "script": "bench/latency.py (measure_transports), bench/fleet_process.py",
        "method": (f"{calls} timed `/ip/address` prints per series after 5 warm-up calls, the series "
                   "taking turns call by call, each over one "
                   "kept connection, as the admin user of one simulated RouterOS 7.19 device with no "
                   "added delay; the simulator runs in its own process. tikflow series go through "
                   "`DevicePool.session` and `DeviceClient.print`; `rest` is HTTPS with a pinned "
                   "certificate. The baseline is `librouteros.async_connect` and `api.path('ip', "
                   "'address')`."),
        "columns": LATENCY_COLUMNS,
        "rows": _latency_rows(rows),
        "notes": ["A ratio below 1 is possible: librouteros 4.2 wraps every sentence read and "
                  "write in `asyncio.wait_for`, and casts values to Python types. tikflow's api "
                  "transport reads raw sentences and applies one timeout per command instead."],
        "data": rows,
    }


def mcp(rows: dict[str, dict[str, Any]], calls: int, database: str) -> dict[str, Any]:
    """Section of benchmark 2: the MCP read tool against the same direct print."""
    tool = rows["MCP ip.address.list.v1"]
    # Database work per call, read from api/mcp_tools.py and api/authz.py.
    return {
        "title": "2. MCP read-tool overhead",
        "script": "bench/latency.py (measure_mcp_read), bench/environment.py",
        "method": (f"{calls} timed `ip.address.list.v1` calls after 5 warm-up calls, alternating "
                   "with the baseline, through the "
                   "official MCP client (streamable HTTP) in one session with the dev token, against "
                   f"the real api process ({database} database) and one enrolled simulated device "
                   "with no added delay. The baseline is the same print made directly with "
                   "librouteros as the same service account."),
        "columns": LATENCY_COLUMNS,
        "rows": _latency_rows(rows),
        "notes": [f"Median overhead per tool call: {tool['overhead_median_ms']:.2f} ms. Besides MCP "
                  "framing over HTTP and the token check, each call reads the switched-off tools, "
                  "counts a caller and a device rate-limit window, looks the device up twice and "
                  "writes an audit row, all in the database, around the pooled device session."],
        "data": rows,
    }


def fleet(record: dict[str, Any]) -> dict[str, Any]:
    """Section of benchmark 3: one process serving a large fleet."""
    devices = record["devices"]
    rows = [
        ["devices", devices, "-"],
        ["transports per device", ", ".join(record["transports"]), "-"],
        ["seconds to start every server", record["start_seconds"], "-"],
        ["seconds until every device answered a login + print", record["answer_seconds"], "-"],
        ["seconds from start until all answered", record["ready_seconds"],
         f"< {FLEET_READY_TARGET_SECONDS}"],
        ["RSS after all answered (MiB)", record["rss_answered_mib"], f"< {FLEET_MEMORY_TARGET_MIB}"],
        ["peak RSS (MiB)", record["peak_rss_mib"], f"< {FLEET_MEMORY_TARGET_MIB}"],
    ]
    met = (record["ready_seconds"] < FLEET_READY_TARGET_SECONDS
           and record["rss_answered_mib"] < FLEET_MEMORY_TARGET_MIB)
    return {
        "title": f"3. {devices} simulated devices in one process",
        "script": f"bench/simulator_fleet.py --devices {devices} --json",
        "method": ("A fresh process builds the fleet from the lab sample export (RouterOS 7.19), "
                   "starts every server, then logs in to every device over the binary API, 200 "
                   "at a time, and prints `/ip/address` once."),
        "columns": ["quantity", "value", "target"],
        "rows": rows,
        "notes": [f"Both targets met: {'yes' if met else 'no'}."],
        "data": record,
    }


def rollout(record: dict[str, Any], database: str) -> dict[str, Any]:
    """Section of benchmark 4: rollout wall time against its round-trip floor."""
    shape, floor = record["shape"], record["floor_seconds"]
    phases = record["phase_wall_seconds"]
    delay_ms = shape["delay"] * 1000
    rows = [
        ["devices", shape["devices"]],
        ["changes per device (address adds)", shape["changes_per_device"]],
        [f"plans (at most {record['max_changes_per_plan']} changes each, applied one after another)",
         len(record["plans"])],
        ["reply delay per round trip (ms)", delay_ms],
        ["canary / batch size / max_parallel", f"{shape['canary']} / {shape['batch_size']} / "
                                               f"{shape['max_parallel']}"],
        ["worker activity slots", shape["activity_slots"]],
        ["plan risk", record["risk"]],
        ["plan.create.v1, all plans (s, not part of the wall time)", record["plan_create_seconds"]],
        ["device round trips expected", record["round_trips_expected"]],
        ["device round trips counted by the simulator", record["round_trips_counted"]],
        ["commands counted", ", ".join(f"{command} {count}" for command, count
                                       in sorted(record.get("commands_counted", {}).items()))],
        ["floor: preflight (s)", floor["preflight"]],
        ["floor: apply (s)", floor["apply"]],
        ["floor: health gates (s)", floor["health_gates"]],
        ["floor: total (s)", floor["total"]],
        ["wall time, all plans (s)", record["wall_seconds"]],
        ["**wall / floor**", record["wall_to_floor"]],
        ["preflight: wall (s) / floor", f"{_number(phases['preflight'])} / "
                                        f"{_number(floor['preflight'])} = "
                                        f"{_number(record['phase_to_floor']['preflight'])}"],
        ["batches (changes and health gates): wall (s) / floor",
         f"{_number(phases['batches'])} / {_number(floor['apply'] + floor['health_gates'])} = "
         f"{_number(record['phase_to_floor']['batches'])}"],
        ["worker RSS after the rollout (MiB)", record.get("worker_rss_after_mib")],
    ]
    return {
        "title": "4. Rollout against its round-trip floor",
        "script": "bench/rollout.py, bench/stats.py (rollout_floor), bench/environment.py",
        "method": (f"Plans of {shape['changes_per_device']} address adds per device over "
                   f"{shape['devices']} simulated devices, created and applied through MCP against the "
                   f"real api, worker and Temporal dev server ({database} database). Every device "
                   f"delays each reply by {delay_ms:g} ms (the simulator's `latency` fault). Wall time "
                   "runs from each `plan.apply.v1` call until its PlanApply workflow returns."),
        "columns": ["quantity", "value"],
        "rows": rows,
        "notes": [
            "Wall time and floor are sums over the plans. "
            "Floor = round trips on the critical path x delay. Preflight checks one device after "
            "the other (login + the fingerprint prints of each). Each batch applies its devices' "
            "changes one by one, max_parallel devices at a time, and the health gate reads every "
            "device of the batch at once (one print per change), limited by the worker's activity "
            "slots. The per-device session limit (2) never binds: a device runs one step at a time.",
            "Expected round trips per device: 1 login + 2 preflight prints (`/ip/address` and "
            "`/interface`, the tables the planner read and fingerprinted) + 1 per add + 1 verify "
            "print per change. The counted figure is every reply the simulator delayed during the "
            "apply; logins are the difference between it and the commands counted.",
            "Activities, from the workflow histories. Schedule-to-start is the wait for Temporal "
            "and a worker slot, start-to-close is the activity (device round trips and database "
            "work). The rest of a phase's wall time is workflow-task time between activities:",
            _activity_table(record["activities"], shape),
        ],
        "data": record,
    }


def _number(value: float) -> str:
    return f"{value:.3g}"


def _activity_table(activities: dict[str, dict[str, Any]], shape: dict[str, Any]) -> str:
    """Render activity timing as a Markdown table, with the device time each one needs."""
    changes = shape["changes_per_device"]
    round_trips = {
        "snapshot_and_check": shape["login_round_trips"] + shape["preflight_round_trips"],
        "apply_change": shape["apply_round_trips"],
        "verify_applied": changes * shape["verify_round_trips_per_change"],
    }
    lines = ["| activity | count | device round trips each | median schedule-to-start ms | "
             "median start-to-close ms |",
             "|---|---|---|---|---|"]
    for name, timing in activities.items():
        lines.append(f"| {name} | {timing['count']} | {round_trips.get(name, 0)} | "
                     f"{_number(timing['median_schedule_to_start_ms'])} | {_number(timing['median_start_to_close_ms'])} |")
    return "\n".join(lines)


def memory(idle_rss_mib: dict[str, float], fleet_record: dict[str, Any]) -> dict[str, Any]:
    """Section of benchmark 5: idle process memory and memory per simulated device."""
    devices = fleet_record["devices"]
    started = (fleet_record["rss_started_mib"] - fleet_record["rss_before_mib"]) * 1024 / devices
    answered = (fleet_record["rss_answered_mib"] - fleet_record["rss_before_mib"]) * 1024 / devices
    rows = [
        ["idle worker process, RSS after start (MiB)", idle_rss_mib["worker"]],
        ["idle api process, RSS after start (MiB)", idle_rss_mib["api"]],
        [f"per simulated device, servers started (KiB, {devices} devices)", started],
        [f"per simulated device, after one login + print (KiB, {devices} devices)", answered],
    ]
    return {
        "title": "5. Memory per idle process and per simulated device",
        "script": "bench/environment.py (resident_mib), bench/simulator_fleet.py",
        "method": ("Worker and api RSS come from `/proc/<pid>/status` once the worker logged "
                   "`worker started` and the devices were enrolled, before any benchmark used them. "
                   "Per-device memory is the fleet process's RSS growth over its RSS before the "
                   "fleet was built, divided by the device count."),
        "columns": ["quantity", "value"],
        "rows": rows,
        "data": {"idle_rss_mib": idle_rss_mib, "per_device_kib_started": started,
                 "per_device_kib_answered": answered, "fleet": fleet_record},
    }


def failed(name: str, error: str) -> dict[str, Any]:
    """Section of a benchmark that raised: the error instead of a table."""
    return {"title": name, "script": "bench/run.py", "method": "", "error": error}
