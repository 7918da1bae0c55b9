"""Plan and apply end to end: official MCP client -> api -> Temporal workflow -> simulated router.

The stack is the real thing: the Temporal dev server, `tikflow worker` and `tikflow api`
processes, and `tikflow simulate` processes loaded with the product's sample exports and, when
present, each real-world export. The whole module runs once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import librouteros
import pytest

from inventory.devices import Inventory, enrol_device, load_key_ring
from planning.state import same_content
from routeros.rsc import parse_export
from storage.db import Database
from tests.support.simulator import SimulatorProcess, product_samples, real_exports, start_simulator
from tests.support.stack import McpSession, Stack, start_stack

EXPORTS = product_samples() + real_exports()
TERMINAL = {"applied", "rolled_back", "failed", "needs_operator", "aborted"}


@pytest.fixture(scope="module")
def simulators() -> AsyncIterator[dict[str, tuple[Path, SimulatorProcess]]]:
    """One simulated router per export, named after the export file."""
    started: dict[str, tuple[Path, SimulatorProcess]] = {}
    try:
        for export in EXPORTS:
            started[export.stem] = (export, start_simulator(export=export))
        yield started
    finally:
        for _export, process in started.values():
            process.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def stack(request, simulators, temporal_server, tmp_path_factory) -> AsyncIterator[Stack]:
    var_dir = tmp_path_factory.mktemp(f"stack-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{var_dir}/tikflow.db"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    running = start_stack(database_url=url, temporal_address=temporal_server.address, var_dir=var_dir)
    db = Database(url)
    inventory = Inventory(db, load_key_ring(running.settings))
    try:
        for name, (_export, process) in simulators.items():
            # The other database's run changed these routers; start from the export again.
            process.reset("r1")
            await process.open_api_service("r1")
            endpoint = process.endpoints[0]
            host, _, port = endpoint["api"].rpartition(":")
            await enrol_device(inventory, running.settings, name=name, address=host, port=int(port),
                               transport="api", environment="lab",
                               username=endpoint["service_username"],
                               password=endpoint["service_password"])
        yield running
    finally:
        await db.dispose()
        running.stop()


async def wait_for_end(mcp: McpSession, plan_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = await mcp.call("plan.status.v1", {"plan_id": plan_id})
        if status["status"] in TERMINAL:
            return status
        assert time.monotonic() < deadline, f"plan {plan_id} still {status['status']} after {timeout} s"
        await asyncio.sleep(0.3)


def export_items(export: Path, path: str) -> list[dict[str, str | None]]:
    parsed = parse_export(export.read_bytes())
    return [dict(c.properties) for c in parsed.commands if c.path == path and c.verb == "add"]


def pick_interface(process: SimulatorProcess) -> str:
    names = [row["name"] for row in process.state("r1", "/interface") if row.get("name")]
    assert names, "the simulated router has no interfaces"
    return names[0]


async def test_read_tools_return_the_exports_items(stack: Stack, simulators):
    """device.list, overview and the list tools show each export's real items."""
    async with stack.mcp() as mcp:
        devices = await mcp.call("device.list.v1", {})
        assert sorted(d["name"] for d in devices["items"]) == sorted(simulators)
        for name, (export, process) in simulators.items():
            overview = await mcp.call("system.get_overview.v1", {"device": name})
            assert overview["resource"]["version"].startswith(process.endpoints[0]["version"])

            addresses = await mcp.call("ip.address.list.v1", {"device": name, "limit": 5000})
            expected = sorted(str(i["address"]) for i in export_items(export, "/ip/address"))
            assert sorted(i["address"] for i in addresses["items"]) == expected, name

            rules = await mcp.call("firewall.filter.list.v1", {"device": name, "limit": 5000})
            expected_rules = export_items(export, "/ip/firewall/filter")
            assert [r["chain"] for r in rules["items"]] == [str(r["chain"]) for r in expected_rules], name


async def test_plan_applies_address_and_rule(stack: Stack, simulators):
    """A plan adding an address and a firewall rule applies, and each router then has both."""
    async with stack.mcp() as mcp:
        for index, (name, (_export, process)) in enumerate(simulators.items()):
            address = f"10.251.{index}.1/24"
            interface = pick_interface(process)
            created = await mcp.call("plan.create.v1", {
                "description": f"add a lab subnet on {name}",
                "changes": [
                    {"device": name, "path": "/ip/address", "action": "add",
                     "values": {"address": address, "interface": interface, "comment": "e2e"}},
                    {"device": name, "path": "/ip/firewall/filter", "action": "add",
                     "values": {"chain": "forward", "action": "accept", "protocol": "tcp",
                                "dst-port": "8443", "src-address": address.replace(".1/", ".0/"),
                                "comment": "e2e"}},
                ],
            })
            assert created["risk"]["level"] == "low"
            assert [d["name"] for d in created["devices"]] == [name]
            assert f"+ address={address}" in created["diff"][0]["text"]

            applied = await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                                       "plan_hash": created["plan_hash"]})
            assert applied["workflow_id"] == f"plan-apply:{created['plan_id']}"
            final = await wait_for_end(mcp, created["plan_id"])
            assert final["status"] == "applied", final
            assert [s["status"] for s in final["steps"]] == ["applied", "applied"]

            assert address in [row["address"] for row in process.state("r1", "/ip/address")]
            rules = process.state("r1", "/ip/firewall/filter")
            assert any(r.get("dst-port") == "8443" and r.get("comment") == "e2e" for r in rules)


async def test_rejected_second_step_rolls_back_to_snapshot(stack: Stack, simulators):
    """When the router rejects step 2, step 1 is undone and the state equals the snapshot."""
    name, (_export, process) = next(iter(simulators.items()))
    interface = pick_interface(process)
    before = {path: process.state("r1", path) for path in ("/ip/address", "/ip/firewall/filter")}
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.create.v1", {
            "description": "a change the router will reject half-way",
            "changes": [
                {"device": name, "path": "/ip/address", "action": "add",
                 "values": {"address": "10.252.0.1/24", "interface": interface}},
                {"device": name, "path": "/ip/firewall/filter", "action": "add",
                 "values": {"chain": "forward", "action": "drop", "protocol": "udp", "dst-port": "9"}},
            ],
        })
        process.set_faults("r1", {"traps": [{"command": "/ip/firewall/filter/add",
                                             "message": "input does not match any value of chain",
                                             "category": 1}]})
        try:
            await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                             "plan_hash": created["plan_hash"]})
            final = await wait_for_end(mcp, created["plan_id"])
        finally:
            process.clear_faults("r1")
    assert final["status"] == "rolled_back", final
    assert "input does not match any value of chain" in final["detail"]
    assert [s["status"] for s in final["steps"]] == ["undone", "failed"]
    for path, rows in before.items():
        now = process.state("r1", path)
        assert now == rows or same_content(now, rows), path


async def test_applying_a_plan_twice_is_refused(stack: Stack, simulators):
    """The second apply of the same plan is a tool error; the change is made once."""
    name, (_export, process) = next(iter(simulators.items()))
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.create.v1", {
            "description": "comment a rule once",
            "changes": [{"device": name, "path": "/ip/firewall/filter", "action": "add",
                         "values": {"chain": "forward", "action": "accept", "protocol": "tcp",
                                    "dst-port": "8081", "comment": "once"}}],
        })
        arguments = {"plan_id": created["plan_id"], "plan_hash": created["plan_hash"]}
        await mcp.call("plan.apply.v1", arguments)
        message = await mcp.error("plan.apply.v1", arguments)
        assert "cannot be applied again" in message
        assert (await wait_for_end(mcp, created["plan_id"]))["status"] == "applied"
    rules = [r for r in process.state("r1", "/ip/firewall/filter") if r.get("comment") == "once"]
    assert len(rules) == 1


async def test_stale_plan_fails_closed(stack: Stack, simulators):
    """A device changed after planning makes apply fail with nothing changed."""
    name, (_export, process) = next(iter(simulators.items()))
    interface = pick_interface(process)
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.create.v1", {
            "description": "planned, then overtaken by a manual change",
            "changes": [{"device": name, "path": "/ip/address", "action": "add",
                         "values": {"address": "10.253.0.1/24", "interface": interface}}],
        })
        endpoint = process.endpoints[0]
        host, _, port = endpoint["api"].rpartition(":")
        api = await librouteros.async_connect(host=host, port=int(port),
                                              username=endpoint["username"],
                                              password=endpoint["password"])
        try:
            await api.path("ip", "address").add(address="10.254.0.1/24", interface=interface)
        finally:
            await api.close()
        before = process.state("r1", "/ip/address")
        await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                         "plan_hash": created["plan_hash"]})
        final = await wait_for_end(mcp, created["plan_id"])
    assert final["status"] == "failed"
    assert "stale plan" in final["detail"]
    assert "create a new plan" in final["detail"]
    assert process.state("r1", "/ip/address") == before


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"plan_id": "plan-000000000000", "plan_hash": "0" * 64}, "does not exist"),
    ],
)
async def test_apply_bad_input_is_a_tool_error(stack: Stack, arguments, message):
    """An unknown plan is a tool error that names what to pass."""
    async with stack.mcp() as mcp:
        assert message in await mcp.error("plan.apply.v1", arguments)


async def test_bad_input_errors_name_fix(stack: Stack, simulators):
    """A wrong device, an unknown path, an invalid address and a stale hash each name the fix."""
    name = next(iter(simulators))
    async with stack.mcp() as mcp:
        text = await mcp.error("ip.address.list.v1", {"device": "no-such-router"})
        assert "no device with id or name 'no-such-router'" in text
        assert name in text
        text = await mcp.error("plan.create.v1", {"description": "typo", "changes": [
            {"device": name, "path": "/ip/adress", "action": "add", "values": {"address": "10.0.0.1/24"}}]})
        assert "/ip/adress is not a menu" in text
        text = await mcp.error("plan.create.v1", {"description": "bad", "changes": [
            {"device": name, "path": "/ip/address", "action": "add",
             "values": {"address": "10.0.0.999/24", "interface": "ether1"}}]})
        assert "not a valid IPv4 address" in text
        created = await mcp.call("plan.create.v1", {"description": "hash check", "changes": [
            {"device": name, "path": "/ip/firewall/filter", "action": "add",
             "values": {"chain": "forward", "action": "accept", "protocol": "tcp", "dst-port": "1"}}]})
        text = await mcp.error("plan.apply.v1", {"plan_id": created["plan_id"], "plan_hash": "f" * 64})
        assert "plan_hash does not match" in text


async def test_metrics_expose_plan_series(stack: Stack, simulators):
    """After the plans above, /metrics carries tool, RouterOS, plan, approval and incident series."""
    import httpx

    text = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    samples = {line.split(" ")[0]: float(line.split(" ")[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert samples['tikflow_tool_calls_total{result="ok",tool="plan.apply.v1"}'] >= 1
    assert samples['tikflow_tool_calls_total{result="rejected",tool="plan.apply.v1"}'] >= 1
    routeros_counts = [k for k in samples if k.startswith("tikflow_routeros_call_seconds_count{")]
    assert any('operation="print"' in k for k in routeros_counts)
    assert samples['tikflow_plans{status="applied"}'] >= 1
    assert samples["tikflow_rollbacks"] >= 1
    assert samples["tikflow_pending_approvals"] == 0
    assert samples["tikflow_incident_paused"] == 0
