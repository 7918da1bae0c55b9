"""Risk reasons for changes that touch the path tikflow uses to reach a device."""

from __future__ import annotations

from planning.model import ChangeRequest, ResolvedChange, ResolvedTarget
from planning.planner import PlanDevice, build_plan
from planning.risk import ManagementPath, assess

DEVICE = PlanDevice(id="dev-1", name="r1", environment="lab", address="192.0.2.1", port=8728,
                    transport="api", username="tikflow")
TABLES = {
    "/interface": [{".id": "*1", "name": "ether1", "disabled": "false"},
                   {".id": "*2", "name": "ether2", "disabled": "false"}],
    "/ip/address": [{".id": "*1", "address": "192.0.2.1/24", "interface": "ether1"},
                    {".id": "*2", "address": "10.0.0.1/24", "interface": "ether2"}],
    "/ip/service": [{".id": "*1", "name": "api", "port": "8728", "disabled": "false"},
                    {".id": "*2", "name": "telnet", "port": "23", "disabled": "false"}],
    "/user": [{".id": "*1", "name": "tikflow", "group": "full"},
              {".id": "*2", "name": "guest", "group": "read"}],
    "/interface/bridge/port": [],
}
MANAGEMENT = ManagementPath(address="192.0.2.1", port=8728, transport="api", username="tikflow",
                            interface="ether1")


async def lookup(ref: str) -> PlanDevice:
    return DEVICE


async def read(device: PlanDevice, path: str) -> list[dict[str, str]]:
    return [dict(row) for row in TABLES.get(path, [])]


async def risk_of(**change) -> tuple[str, list[str]]:
    plan = await build_plan("risk", [ChangeRequest(device="r1", **change)], lookup_device=lookup,
                            read_table=read)
    return plan.risk.level, plan.risk.reasons


def added(path: str, values: dict[str, str]) -> ResolvedChange:
    return ResolvedChange(seq=1, device_id="dev-1", device_name="r1", path=path, action="add",
                          values=values)


async def test_risk_disabling_management_interface_is_high():
    """Disabling the interface that carries the management address is high risk, named."""
    level, reasons = await risk_of(path="/interface", action="set", where={"name": "ether1"},
                                   values={"disabled": "yes"})
    assert level == "high"
    assert "changes interface ether1, which carries the address tikflow reaches the device on" in reasons


async def test_risk_other_interface_is_not_management():
    """Disabling another interface is medium risk and names no management path."""
    level, reasons = await risk_of(path="/interface", action="set", where={"name": "ether2"},
                                   values={"disabled": "yes"})
    assert level == "medium"
    assert not any("tikflow reaches" in reason for reason in reasons)


async def test_risk_management_address_removal_names_address():
    """Removing the management address is high risk and names the address."""
    level, reasons = await risk_of(path="/ip/address", action="remove",
                                   where={"address": "192.0.2.1/24"})
    assert level == "high"
    assert ("changes address 192.0.2.1/24, which tikflow reaches the device on (192.0.2.1)"
            in reasons)


async def test_risk_management_service_is_named():
    """Changing the API service tikflow connects through is high risk, naming service and port."""
    level, reasons = await risk_of(path="/ip/service", action="set", where={"name": "api"},
                                   values={"address": "10.0.0.0/8"})
    assert level == "high"
    assert "changes service api (port 8728), which tikflow connects through" in reasons


async def test_risk_other_service_is_not_named():
    """Changing telnet keeps the generic login reason but does not name tikflow's service."""
    _level, reasons = await risk_of(path="/ip/service", action="set", where={"name": "telnet"},
                                    values={"disabled": "yes"})
    assert not any("tikflow connects through" in reason for reason in reasons)


async def test_risk_management_user_is_named():
    """Changing the user tikflow logs in with is high risk, naming the user."""
    level, reasons = await risk_of(path="/user", action="set", where={"name": "tikflow"},
                                   values={"group": "read"})
    assert level == "high"
    assert "changes user tikflow, the account tikflow logs in with" in reasons


async def test_risk_other_user_is_not_named():
    """Changing another user does not claim to touch tikflow's login account."""
    _level, reasons = await risk_of(path="/user", action="set", where={"name": "guest"},
                                    values={"group": "write"})
    assert not any("the account tikflow logs in with" in reason for reason in reasons)


def test_risk_input_rule_on_management_port_is_named():
    """An input rule matching the management port is high risk with a reason naming the port."""
    risk = assess([added("/ip/firewall/filter", {"chain": "input", "action": "drop",
                                                  "protocol": "tcp", "dst-port": "8000-9000"})],
                  management={"dev-1": MANAGEMENT}, environments={"dev-1": "lab"})
    assert risk.level == "high"
    assert "changes a firewall input rule that matches port 8728, which tikflow connects to" in risk.reasons


def test_risk_input_rule_other_port():
    """An input rule for another port keeps the generic input reason without the port."""
    risk = assess([added("/ip/firewall/filter", {"chain": "input", "action": "drop",
                                                  "protocol": "tcp", "dst-port": "22"})],
                  management={"dev-1": MANAGEMENT}, environments={"dev-1": "lab"})
    assert "changes a firewall input rule, which guards the management path" in risk.reasons
    assert not any("port 8728" in reason for reason in risk.reasons)


def test_risk_rule_without_match_conditions_is_flagged():
    """A firewall rule with no match conditions is high risk with its own reason."""
    risk = assess([added("/ip/firewall/filter", {"chain": "forward", "action": "drop"})],
                  management={"dev-1": MANAGEMENT}, environments={"dev-1": "lab"})
    assert risk.level == "high"
    assert "a firewall rule with no match conditions applies to all traffic" in risk.reasons


def test_risk_bridge_port_with_management_interface():
    """Adding the management interface to a bridge is high risk, naming the interface."""
    risk = assess([added("/interface/bridge/port", {"bridge": "br1", "interface": "ether1"})],
                  management={"dev-1": MANAGEMENT}, environments={"dev-1": "lab"})
    assert risk.level == "high"
    assert ("changes interface ether1, which carries the address tikflow reaches the device on"
            in risk.reasons)


def test_risk_default_route_is_high():
    """Adding a default route is high risk."""
    risk = assess([added("/ip/route", {"dst-address": "0.0.0.0/0", "gateway": "10.0.0.254"})],
                  management={"dev-1": MANAGEMENT}, environments={"dev-1": "lab"})
    assert risk.level == "high"
    assert "changes a default route" in risk.reasons


def test_risk_blast_radius_counts_devices_and_environments():
    """The blast radius counts distinct devices and environments, and prod raises the level."""
    changes = [
        ResolvedChange(seq=n, device_id=f"dev-{n}", device_name=f"r{n}", path="/ip/dns",
                       action="set", values={"servers": "192.0.2.53"},
                       targets=[ResolvedTarget(id="", before={"servers": ""})], singleton=True)
        for n in range(1, 4)
    ]
    risk = assess(changes, management={},
                  environments={"dev-1": "lab", "dev-2": "lab", "dev-3": "prod"})
    assert risk.blast_radius == {"devices": 3, "environments": 2}
    assert "touches a prod device" in risk.reasons
    assert "blast radius: 2 environments (lab, prod)" in risk.reasons


def test_risk_one_environment_has_no_span_reason():
    """A plan within one environment gets no environment-span reason."""
    risk = assess([added("/ip/firewall/address-list", {"list": "a", "address": "192.0.2.1"})],
                  management={"dev-1": MANAGEMENT}, environments={"dev-1": "lab"})
    assert risk.blast_radius == {"devices": 1, "environments": 1}
    assert not any("environments" in reason for reason in risk.reasons)
