"""Typed planning tools, multi-device targeting and tool versions through the official MCP client.

One `tikflow simulate --devices 3` process (r1..r3, all tagged ``edge`` in the lab) behind the
real api and worker processes and the Temporal dev server, on SQLite.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import librouteros
import pytest

from inventory.devices import Inventory, enrol_device, load_key_ring
from storage.db import Database
from storage.plans import get_plan
from tests.support.simulator import SimulatorProcess, start_simulator
from tests.support.stack import McpSession, Stack, start_stack

TERMINAL = {"applied", "rolled_back", "failed", "needs_operator", "aborted"}


@pytest.fixture(scope="module")
def fleet() -> AsyncIterator[SimulatorProcess]:
    process = start_simulator(devices=3)
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def stack(fleet, temporal_server, tmp_path_factory) -> AsyncIterator[Stack]:
    var_dir = tmp_path_factory.mktemp("typed-tools")
    url = f"sqlite+aiosqlite:///{var_dir}/tikflow.db"
    running = start_stack(database_url=url, temporal_address=temporal_server.address, var_dir=var_dir)
    db = Database(url)
    inventory = Inventory(db, load_key_ring(running.settings))
    try:
        for endpoint in fleet.endpoints:
            host, _, port = endpoint["api"].rpartition(":")
            await enrol_device(inventory, running.settings, name=endpoint["name"], address=host,
                               port=int(port), transport="api", environment="lab",
                               username=endpoint["service_username"],
                               password=endpoint["service_password"], tags=["edge"])
        running.db = db
        yield running
    finally:
        await db.dispose()
        running.stop()


async def device_api(fleet: SimulatorProcess, name: str) -> Any:
    endpoint = fleet.endpoint(name)
    host, _, port = endpoint["api"].rpartition(":")
    return await asyncio.wait_for(
        librouteros.async_connect(host=host, port=int(port), username=endpoint["username"],
                                  password=endpoint["password"]), timeout=10)


async def wait_for_end(mcp: McpSession, plan_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = await mcp.call("plan.status.v1", {"plan_id": plan_id})
        if status["status"] in TERMINAL:
            return status
        assert time.monotonic() < deadline, f"plan {plan_id} still {status['status']} after {timeout} s"
        await asyncio.sleep(0.3)


def only_entry(created: dict) -> dict:
    assert len(created["diff"]) == 1, created["diff"]
    entries = created["diff"][0]["entries"]
    assert len(entries) == 1, entries
    return entries[0]


@pytest.fixture(scope="module")
async def vlan_bridge(fleet: SimulatorProcess) -> str:
    """A bridge with VLAN filtering and ports ether4 and ether5 on r1."""
    api = await device_api(fleet, "r1")
    try:
        await api.path("interface", "bridge").add(name="br-vlan", **{"vlan-filtering": "yes"})
        for port in ("ether4", "ether5"):
            await api.path("interface", "bridge", "port").add(bridge="br-vlan", interface=port)
        await api.path("interface", "bridge").add(name="br-plain")
    finally:
        await api.close()
    return "br-vlan"


TYPED_CASES = [
    ("plan.ip_address.add.v1", {"address": "10.61.0.1/24", "interface": "ether2", "comment": "t"},
     "add", "/ip/address", {"address": "10.61.0.1/24", "interface": "ether2", "comment": "t"}),
    ("plan.route.add.v1", {"dst_address": "10.62.0.0/16", "gateway": "192.0.2.254", "distance": 5},
     "add", "/ip/route", {"dst-address": "10.62.0.0/16", "gateway": "192.0.2.254", "distance": "5"}),
    ("plan.firewall_filter.add.v1", {"chain": "forward", "action": "drop", "protocol": "tcp",
                                     "dst_port": 2323, "connection_state": ["new"]},
     "add", "/ip/firewall/filter", {"chain": "forward", "action": "drop", "protocol": "tcp",
                                    "dst-port": "2323", "connection-state": "new"}),
    ("plan.firewall_nat.add.v1", {"chain": "srcnat", "action": "masquerade", "out_interface": "ether1"},
     "add", "/ip/firewall/nat", {"chain": "srcnat", "action": "masquerade", "out-interface": "ether1"}),
    ("plan.address_list.add.v1", {"list_name": "blocked", "address": "198.51.100.0/24"},
     "add", "/ip/firewall/address-list", {"list": "blocked", "address": "198.51.100.0/24"}),
    ("plan.system_identity.set.v1", {"name": "edge-r1"},
     "set", "/system/identity", {"name": "edge-r1"}),
]


@pytest.mark.parametrize(("tool", "arguments", "action", "path", "after"), TYPED_CASES,
                         ids=[case[0] for case in TYPED_CASES])
async def test_typed_tool_plans_expected_diff(stack: Stack, tool, arguments, action, path, after):
    """Each typed tool stores a one-device plan whose diff shows exactly the planned item."""
    async with stack.mcp() as mcp:
        created = await mcp.call(tool, {"description": f"typed {tool}", "devices": ["r1"], **arguments})
    entry = only_entry(created)
    assert entry["action"] == action
    assert entry["path"] == path
    for key, value in after.items():
        assert entry["after"][key] == value, key
    assert created["devices"][0]["name"] == "r1"


async def test_typed_remove_dns_and_interface_diffs(stack: Stack, fleet: SimulatorProcess):
    """Remove, DNS and interface tools select the existing item and show before and after."""
    api = await device_api(fleet, "r1")
    try:
        await api.path("ip", "address").add(address="10.63.0.1/24", interface="ether3")
    finally:
        await api.close()
    async with stack.mcp() as mcp:
        removed = await mcp.call("plan.ip_address.remove.v1", {
            "description": "drop a lab address", "devices": ["r1"], "address": "10.63.0.1/24"})
        dns = await mcp.call("plan.dns.set_servers.v1", {
            "description": "lab resolvers", "devices": ["r1"], "servers": ["192.0.2.53", "192.0.2.54"],
            "allow_remote_requests": False})
        disabled = await mcp.call("plan.interface.set_enabled.v1", {
            "description": "park ether5", "devices": ["r1"], "interface": "ether5", "enabled": False})
    entry = only_entry(removed)
    assert entry["action"] == "remove"
    assert entry["after"] is None
    assert entry["before"]["address"] == "10.63.0.1/24"
    entry = only_entry(dns)
    assert entry["after"]["servers"] == "192.0.2.53,192.0.2.54"
    assert entry["after"]["allow-remote-requests"] == "false"
    entry = only_entry(disabled)
    assert entry["before"]["name"] == "ether5"
    assert entry["before"]["disabled"] == "false"
    assert entry["after"]["disabled"] == "true"


async def test_bridge_vlan_plan_and_checks(stack: Stack, vlan_bridge: str):
    """A bridge VLAN plan lists its ports, and missing ports or a bridge without filtering are rejected."""
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.bridge_vlan.add.v1", {
            "description": "guest VLAN", "devices": ["r1"], "bridge": vlan_bridge,
            "vlan_ids": [30, 31], "tagged": [vlan_bridge, "ether4"], "untagged": ["ether5"]})
        not_a_port = await mcp.error("plan.bridge_vlan.add.v1", {
            "description": "bad", "devices": ["r1"], "bridge": vlan_bridge, "vlan_ids": [30],
            "tagged": ["ether2"]})
        no_filtering = await mcp.error("plan.bridge_vlan.add.v1", {
            "description": "bad", "devices": ["r1"], "bridge": "br-plain", "vlan_ids": [30],
            "tagged": ["br-plain"]})
        out_of_range = await mcp.error("plan.bridge_vlan.add.v1", {
            "description": "bad", "devices": ["r1"], "bridge": vlan_bridge, "vlan_ids": [4095],
            "tagged": [vlan_bridge]})
    entry = only_entry(created)
    assert entry["path"] == "/interface/bridge/vlan"
    assert entry["after"] == {"bridge": vlan_bridge, "vlan-ids": "30,31",
                              "tagged": f"{vlan_bridge},ether4", "untagged": "ether5"}
    assert "port 'ether2' is not a port of bridge br-vlan on r1" in not_a_port
    assert "vlan-filtering off" in no_filtering
    assert "VLAN id 4095 is out of range" in out_of_range


async def test_typed_tools_explain_bad_input(stack: Stack):
    """Unknown interfaces, bad CIDRs and numeric placement are tool errors naming the fix."""
    async with stack.mcp() as mcp:
        unknown = await mcp.error("plan.ip_address.add.v1", {
            "description": "bad", "devices": ["r1"], "address": "10.64.0.1/24", "interface": "ether9"})
        cidr = await mcp.error("plan.ip_address.add.v1", {
            "description": "bad", "devices": ["r1"], "address": "10.64.0.300/24", "interface": "ether2"})
        position = await mcp.error("plan.firewall_filter.add.v1", {
            "description": "bad", "devices": ["r1"], "chain": "forward", "action": "accept",
            "place_before": 0})
        no_target = await mcp.error("plan.system_identity.set.v1", {"description": "bad", "name": "x"})
    assert "interface 'ether9' does not exist on r1" in unknown
    assert "ether2" in unknown
    assert "not a valid IPv4 address with prefix length" in cidr
    assert "is a position" in position
    assert ".id" in position
    assert "no target devices" in no_target


async def test_place_before_lands_before_rule_after_apply(stack: Stack, fleet: SimulatorProcess):
    """A filter rule planned with place_before sits right before that rule once applied."""
    api = await device_api(fleet, "r2")
    try:
        rules = api.path("ip", "firewall", "filter")
        await rules.add(chain="forward", action="accept", comment="first")
        anchor = await rules.add(chain="forward", action="accept", comment="second")
    finally:
        await api.close()
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.firewall_filter.add.v1", {
            "description": "drop telnet before the second rule", "devices": ["r2"],
            "chain": "forward", "action": "drop", "protocol": "tcp", "dst_port": "23",
            "comment": "placed", "place_before": anchor})
        assert only_entry(created)["after"]["place-before"] == anchor
        await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                         "plan_hash": created["plan_hash"]})
        final = await wait_for_end(mcp, created["plan_id"])
    assert final["status"] == "applied", final
    comments = [row.get("comment") for row in fleet.state("r2", "/ip/firewall/filter")]
    assert comments.index("placed") == comments.index("second") - 1
    assert comments.index("first") < comments.index("placed")


async def test_tag_plan_stores_each_device(stack: Stack):
    """A plan targeted by tag stores one diff and one fingerprint set per device, and its rollout."""
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.dns.set_servers.v1", {
            "description": "edge resolvers", "tag": "edge", "servers": ["192.0.2.53"],
            "rollout": {"canary": 1, "batch_size": 2}})
        generic = await mcp.call("plan.create.v1", {
            "description": "edge list entry", "environment": "lab",
            "changes": [{"path": "/ip/firewall/address-list", "action": "add",
                         "values": {"list": "edge-mgmt", "address": "192.0.2.0/24"}}]})
    assert sorted(d["name"] for d in created["devices"]) == ["r1", "r2", "r3"]
    assert created["risk"]["blast_radius"]["devices"] == 3
    assert sorted(d["device_name"] for d in generic["diff"]) == ["r1", "r2", "r3"]
    typed_plan, _changes = await get_plan(stack.db, created["plan_id"])
    assert typed_plan.rollout["canary"] == 1
    assert typed_plan.rollout["batch_size"] == 2
    for result in (created, generic):
        found = await get_plan(stack.db, result["plan_id"])
        assert found is not None
        plan, changes = found
        assert len(plan.device_ids) == 3
        assert sorted(plan.fingerprints) == sorted(plan.device_ids)
        assert all(plan.fingerprints[d] for d in plan.device_ids)
        assert len(plan.diff) == 3
        assert sorted(c.device_id for c in changes) == sorted(plan.device_ids)


async def test_address_list_v2_pages_every_item_once(stack: Stack, fleet: SimulatorProcess):
    """Following next_cursor returns every address of the device exactly once."""
    api = await device_api(fleet, "r3")
    try:
        for index in range(7):
            await api.path("ip", "address").add(address=f"10.65.{index}.1/24", interface="ether2")
    finally:
        await api.close()
    expected = sorted(row[".id"] for row in fleet.state("r3", "/ip/address"))
    seen: list[str] = []
    pages = 0
    async with stack.mcp() as mcp:
        arguments: dict[str, Any] = {"device": "r3", "page_size": 3}
        while True:
            page = await mcp.call("ip.address.list.v2", arguments)
            pages += 1
            assert len(page["items"]) <= 3
            seen.extend(item[".id"] for item in page["items"])
            if page["next_cursor"] is None:
                break
            assert pages < 10, "paging does not end"
            arguments = {**arguments, "cursor": page["next_cursor"]}
        bad = await mcp.error("ip.address.list.v2", {"device": "r2", "cursor": arguments["cursor"]})
    assert sorted(seen) == expected
    assert len(seen) == len(set(seen))
    assert pages == -(-len(expected) // 3)
    assert "another device or filter" in bad


async def test_tools_list_marks_v1_deprecated(stack: Stack):
    """tools/list shows ip.address.list.v1 deprecated with its replacement and v2 active."""
    async with stack.mcp() as mcp:
        listed = await mcp.client.list_tools()
        await mcp.call("ip.address.list.v1", {"device": "r1"})
    tools = {tool.name: tool for tool in listed.tools}
    old, new = tools["ip.address.list.v1"], tools["ip.address.list.v2"]
    assert old.description.startswith("Deprecated: use ip.address.list.v2")
    assert old.meta["tikflow/status"] == "deprecated"
    assert old.meta["tikflow/replacement"] == "ip.address.list.v2"
    assert new.meta["tikflow/status"] == "active"
    assert "deprecated tool called" in stack.logs()


async def test_tag_plan_applies_on_every_device(stack: Stack, fleet: SimulatorProcess):
    """Applying a typed plan targeted by tag changes every tagged device."""
    async with stack.mcp() as mcp:
        created = await mcp.call("plan.system_identity.set.v1", {
            "description": "name the edge routers", "tag": "edge", "name": "edge-router"})
        await mcp.call("plan.apply.v1", {"plan_id": created["plan_id"],
                                         "plan_hash": created["plan_hash"]})
        final = await wait_for_end(mcp, created["plan_id"], timeout=120)
    assert final["status"] == "applied", final
    for name in ("r1", "r2", "r3"):
        assert fleet.state(name, "/system/identity")[0]["name"] == "edge-router", name
