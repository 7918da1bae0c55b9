"""Input checks of the typed planning tools and the expansion of multi-device targets."""

from __future__ import annotations

import re

import pytest

from api.authz import AccessDenied, ToolAccess, ToolCall
from api.targeting import (
    TargetedChange,
    expand_changes,
    has_target,
    resolve_authorized_targets,
    select_devices,
)
from planning import typed
from planning.model import ChangeRequest
from planning.planner import PlanDevice, build_plan
from planning.validation import PlanValidationError
from storage.models import Device
from tikflow.settings import AuthSettings, Settings


def device(name: str, environment: str = "lab", tags: list[str] | None = None) -> Device:
    return Device(id=f"dev-{name}", name=name, address="127.0.0.1", port=8728, transport="api",
                  environment=environment, status="active", tags=tags or [])


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda: typed.check_interface_address("10.0.0.300/24"), "not a valid IPv4 address with prefix"),
        (lambda: typed.check_interface_address("10.0.0.1"), "has no prefix length; add one"),
        (lambda: typed.check_interface_address("2001:db8::1/64"), "is IPv6"),
        (lambda: typed.check_network("dst_address", "10.0.0.1/8"), "is not an IPv4 network"),
        (lambda: typed.check_gateway("10.0.0.1%"), "not an IPv4 address or interface name"),
        (lambda: typed.check_distance(0), "distance 0 is out of range; use 1 to 255"),
        (lambda: typed.check_ports("dst_port", "70000"), "has a port outside 1-65535"),
        (lambda: typed.check_ports("dst_port", "http"), "is not a port list"),
        (lambda: typed.check_ports("dst_port", "90-80"), "reversed range"),
        (lambda: typed.check_ports_need_protocol(None, {"dst-port": "22"}), "needs protocol tcp"),
        (lambda: typed.check_ports_need_protocol("icmp", {"dst-port": "22"}), "now icmp"),
        (lambda: typed.check_address_match("src_address", "10.0.0.0/33"), "is not an IPv4 address"),
        (lambda: typed.check_chain("in put", typed.BUILTIN_FILTER_CHAINS), "is not a chain name"),
        (lambda: typed.check_action("allow", typed.FILTER_ACTIONS, jump_target=None),
         "action 'allow' is not a rule action"),
        (lambda: typed.check_action("jump", typed.FILTER_ACTIONS, jump_target=None), "needs jump_target"),
        (lambda: typed.check_action("drop", typed.FILTER_ACTIONS, jump_target="x"),
         "jump_target only applies to action jump"),
        (lambda: typed.check_connection_state(["open"]), "connection_state ['open'] is invalid"),
        (lambda: typed.check_place_before(3), "is a position"),
        (lambda: typed.check_place_before("3"), "is a position"),
        (lambda: typed.check_place_before("rule-3"), "is not a rule .id"),
        (lambda: typed.check_vlan_ids([0]), "VLAN id 0 is out of range; use 1 to 4094"),
        (lambda: typed.check_vlan_ids([4095]), "VLAN id 4095 is out of range"),
        (lambda: typed.check_vlan_ids([]), "vlan_ids is empty"),
        (lambda: typed.check_vlan_ids([10, 10]), "repeats an id"),
        (lambda: typed.check_vlan_ports([], []), "give tagged or untagged ports"),
        (lambda: typed.check_vlan_ports(["ether2"], ["ether2"]), "is both tagged and untagged"),
        (lambda: typed.check_list_entry("not an address"), "not an IPv4 address, network, range or DNS"),
        (lambda: typed.check_name("name", " "), "name is empty"),
        (lambda: typed.check_name("name", "x" * 65), "use at most 64"),
        (lambda: typed.check_name("name", "a\x07b"), "contains control characters"),
        (lambda: typed.check_dns_servers(["dns.example"]), "DNS server 'dns.example' is not an IP"),
        (lambda: typed.check_dns_servers([]), "servers is empty"),
    ],
)
def test_typed_check_rejects_with_fix(check, message):
    """Each static check rejects bad input with a message naming what to write instead."""
    with pytest.raises(PlanValidationError, match=re.escape(message)):
        check()


def test_typed_checks_accept_good_input():
    """Valid values pass and come back in the form RouterOS takes."""
    assert typed.check_interface_address("192.0.2.1/24") == "192.0.2.1/24"
    assert typed.check_ports("dst_port", 443) == "443"
    assert typed.check_ports("dst_port", "!80,8000-8080") == "!80,8000-8080"
    assert typed.check_place_before("*1F") == "*1F"
    assert typed.check_place_before(None) is None
    assert typed.check_vlan_ids([10, 20]) == "10,20"
    assert typed.check_connection_state(["established", "related"]) == "established,related"
    assert typed.check_list_entry("host.example.com") == "host.example.com"
    assert typed.gateway_interface("192.0.2.1%ether1") == "ether1"
    assert typed.gateway_interface("ether1") == "ether1"
    assert typed.gateway_interface("192.0.2.1") is None


def test_typed_device_checks_name_the_fix():
    """Checks against a device's tables name the missing interface, port, bridge or rule."""
    interfaces = [{"name": "ether1"}, {"name": "ether2"}]
    with pytest.raises(PlanValidationError, match="interface 'ether9' does not exist on r1; use one of: ether1, ether2"):
        typed.require_interfaces(["ether9"], interfaces, "r1")
    with pytest.raises(PlanValidationError, match="vlan-filtering off"):
        typed.require_vlan_bridge("br1", [{"name": "br1", "vlan-filtering": "false"}], "r1")
    with pytest.raises(PlanValidationError, match="bridge 'br2' does not exist on r1"):
        typed.require_vlan_bridge("br2", [{"name": "br1", "vlan-filtering": "true"}], "r1")
    members = [{"bridge": "br1", "interface": "ether2"}]
    with pytest.raises(PlanValidationError, match="port 'ether3' is not a port of bridge br1"):
        typed.require_bridge_ports("br1", ["br1", "ether2", "ether3"], members, "r1")
    with pytest.raises(PlanValidationError, match=r"place_before \*9 is not a rule"):
        typed.require_rule("*9", [{".id": "*1"}], "/ip/firewall/filter", "r1")
    with pytest.raises(PlanValidationError, match="VLAN 21 already has an entry on bridge br1"):
        typed.require_new_vlans("br1", [21], [{".id": "*3", "bridge": "br1", "vlan-ids": "20-22"}], "r1")
    with pytest.raises(PlanValidationError, match="already has address=10.0.0.1/24"):
        typed.require_absent("/ip/address", [{".id": "*1", "address": "10.0.0.1/24"}],
                             {"address": "10.0.0.1/24"}, "r1")


def test_targeting_selects_by_tag_and_environment():
    """Tag and environment both narrow the candidates; an absent selector matches everything."""
    fleet = [device("r1", tags=["edge"]), device("r2", tags=["edge", "core"]),
             device("r3", environment="prod", tags=["edge"]), device("r4")]
    assert [d.name for d in select_devices(fleet, tag="edge", environment=None)] == ["r1", "r2", "r3"]
    assert [d.name for d in select_devices(fleet, tag="edge", environment="lab")] == ["r1", "r2"]
    assert [d.name for d in select_devices(fleet, tag=None, environment="prod")] == ["r3"]
    assert has_target(None, None, None) is False
    assert has_target([], "edge", None) is True


def test_targeting_expands_changes_per_device():
    """A change without a device becomes one change per target; a change with a device stays."""
    targets = [device("r1"), device("r2"), device("r3")]
    changes = [
        TargetedChange(path="/ip/dns", action="set", values={"servers": "192.0.2.53"}),
        TargetedChange(device="r9", path="/system/identity", action="set", values={"name": "x"}),
    ]
    expanded = expand_changes(changes, targets)
    assert [c.device for c in expanded] == ["dev-r1", "dev-r2", "dev-r3", "r9"]
    assert all(c.values == {"servers": "192.0.2.53"} for c in expanded[:3])


def test_targeting_change_without_device_needs_target():
    """A change without a device and no target is rejected with what to give."""
    with pytest.raises(PlanValidationError, match="change 1 names no device"):
        expand_changes([TargetedChange(path="/ip/dns", action="set", values={"servers": "1.1.1.1"})], [])


class FakeInventory:
    """Inventory stand-in that returns a fixed fleet."""

    def __init__(self, fleet: list[Device]) -> None:
        self.fleet = fleet

    async def list(self, *, environment: str | None = None, status: str | None = None) -> list[Device]:
        return [d for d in self.fleet if environment is None or d.environment == environment]

    async def find(self, ref: str) -> Device:
        return next(d for d in self.fleet if ref in (d.id, d.name))


class CountingLimiter:
    """Rate limiter stand-in that records the subjects it was asked about."""

    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def hit(self, key: str, limit: int, *, subject: str) -> None:
        self.subjects.append(subject)


async def test_targeting_by_tag_checks_each_environment():
    """A tag reaching a prod device is rejected for a role that may plan only in the lab."""
    fleet = [device("r1", tags=["edge"]), device("r3", environment="prod", tags=["edge"])]
    inventory = FakeInventory(fleet)
    settings = Settings(auth=AuthSettings(matrix={"operator": {"plan": ["lab"]}}))
    access = ToolAccess(settings, db=None, inventory=inventory)  # type: ignore[arg-type]
    access.limiter = CountingLimiter()  # type: ignore[assignment]
    call = ToolCall(name="plan.dns.set_servers.v1", tier="plan", roles=frozenset({"operator"}),
                    subject="alice")
    with access.bind(call):
        lab_only = await resolve_authorized_targets(inventory, devices=None, tag="edge",  # type: ignore[arg-type]
                                                    environment="lab")
        with pytest.raises(AccessDenied, match="on device r3"):
            await resolve_authorized_targets(inventory, devices=None, tag="edge",  # type: ignore[arg-type]
                                             environment=None)
    assert [d.name for d in lab_only] == ["r1"]
    assert call.device_ids == ["dev-r1", "dev-r3"]


async def test_generic_plan_checks_place_before():
    """plan.create.v1 changes get the same placement rules: an existing .id, never a position."""
    target = PlanDevice(id="dev-1", name="r1", environment="lab", address="192.0.2.1")
    rules = [{".id": "*4", "chain": "forward", "action": "accept", "protocol": "tcp"}]

    async def lookup(ref: str) -> PlanDevice:
        return target

    async def read(plan_device: PlanDevice, path: str) -> list[dict[str, str]]:
        return [dict(rule) for rule in rules] if path == "/ip/firewall/filter" else []

    def rule(**values: str) -> ChangeRequest:
        return ChangeRequest(device="r1", path="/ip/firewall/filter", action="add",
                             values={"chain": "forward", "action": "drop", "protocol": "udp", **values})

    plan = await build_plan("placed", [rule(**{"place-before": "*4"})], lookup_device=lookup,
                            read_table=read)
    assert plan.changes[0].values["place-before"] == "*4"
    with pytest.raises(PlanValidationError, match="is a position"):
        await build_plan("bad", [rule(**{"place-before": "2"})], lookup_device=lookup, read_table=read)
    with pytest.raises(PlanValidationError, match=r"place-before \*9 is not an item of /ip/firewall/filter"):
        await build_plan("bad", [rule(**{"place-before": "*9"})], lookup_device=lookup, read_table=read)
    with pytest.raises(PlanValidationError, match="place-before only applies to 'add'"):
        await build_plan("bad", [ChangeRequest(device="r1", path="/ip/firewall/filter", action="set",
                                               where={".id": "*4"}, values={"place-before": "*4"})],
                         lookup_device=lookup, read_table=read)
