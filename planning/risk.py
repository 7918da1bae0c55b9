"""Risk scoring with reasons: what a change could break, and how many devices it reaches."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from planning.model import ResolvedChange, RiskAssessment

# Menus whose change can cut tikflow off from the device.
MANAGEMENT_PATHS = frozenset(
    {"/ip/service", "/user", "/user/group", "/ip/route", "/interface/bridge", "/interface/vlan",
     "/interface/bridge/vlan", "/interface/bridge/port", "/ip/firewall/filter", "/ip/address"}
)
_LEVELS = {"low": 0, "medium": 1, "high": 2}
# The /ip/service entries each transport connects through. REST runs on www-ssl, or on www
# when TLS is off for the device.
TRANSPORT_SERVICES = {"api": ("api",), "api-ssl": ("api-ssl",), "rest": ("www-ssl", "www"),
                      "ssh": ("ssh",)}
# Menus whose items are ports or VLANs of an interface, named by these properties.
_INTERFACE_REFERENCES = {"/interface/bridge/port": ("interface", "bridge"),
                         "/interface/bridge/vlan": ("bridge", "tagged", "untagged"),
                         "/interface/vlan": ("interface", "name")}
_MATCH_KEYS = frozenset(
    {"src-address", "dst-address", "protocol", "dst-port", "src-port", "in-interface",
     "out-interface", "src-address-list", "dst-address-list", "connection-state",
     "in-interface-list", "out-interface-list", "icmp-options", "tcp-flags", "layer7-protocol",
     "packet-mark", "connection-mark", "routing-mark", "src-mac-address", "connection-nat-state"}
)


@dataclass(frozen=True)
class ManagementPath:
    """The path tikflow reaches one device on: address, port, transport, login and interface."""

    address: str
    port: int | None = None
    transport: str | None = None
    username: str | None = None
    interface: str | None = None


def assess(changes: list[ResolvedChange], management: dict[str, ManagementPath],
           environments: dict[str, str]) -> RiskAssessment:
    """Score a plan.

    Args:
        changes: the resolved changes.
        management: device id -> how tikflow reaches the device.
        environments: device id -> environment (lab, staging, prod).
    """
    level = "low"
    reasons: list[str] = []

    def raise_to(new_level: str, reason: str) -> None:
        nonlocal level
        if _LEVELS[new_level] > _LEVELS[level]:
            level = new_level
        if reason not in reasons:
            reasons.append(reason)

    for change in changes:
        for new_level, reason in _change_risks(change, management.get(change.device_id)):
            raise_to(new_level, reason)

    devices = {c.device_id for c in changes}
    envs = {environments[d] for d in devices if d in environments}
    if "prod" in envs:
        raise_to("medium", "touches a prod device")
    if len(devices) > 10:
        raise_to("medium", f"blast radius: {len(devices)} devices")
    if len(envs) > 1:
        # One plan across environments skips the usual lab -> staging -> prod progression.
        raise_to("medium", f"blast radius: {len(envs)} environments ({', '.join(sorted(envs))})")
    return RiskAssessment(
        level=level,
        reasons=reasons or ["adds or changes items away from the management path"],
        blast_radius={"devices": len(devices), "environments": len(envs)},
    )


def _change_risks(change: ResolvedChange, management: ManagementPath | None) -> list[tuple[str, str]]:
    risks: list[tuple[str, str]] = []
    items = [t.before for t in change.targets] + ([change.values] if change.action == "add" else [])
    if change.action in ("set", "remove"):
        risks.append(("medium", f"{change.action} changes existing items in {change.path}"))
    if change.path == "/ip/firewall/filter":
        risks.extend(_firewall_risks(change, items, management))
    if change.path in ("/ip/service", "/user", "/user/group"):
        risks.append(("high", f"changes {change.path}, which tikflow uses to log in"))
    if change.path == "/ip/route":
        for item in items:
            if item.get("dst-address") in ("0.0.0.0/0", "::/0"):
                risks.append(("high", "changes a default route"))
    if management is None:
        return risks
    if change.path == "/ip/address" and change.action != "add":
        for target in change.targets:
            address = target.before.get("address", "")
            if on_network(address, management.address):
                risks.append(("high", f"changes address {address}, which tikflow reaches the "
                                      f"device on ({management.address})"))
    if change.path == "/ip/service":
        risks.extend(_service_risks(items, management))
    if change.path == "/user" and management.username:
        if any(item.get("name") == management.username for item in items):
            risks.append(("high", f"changes user {management.username}, the account tikflow "
                                  "logs in with"))
    if management.interface:
        risks.extend(_interface_risks(change, items, management.interface))
    return risks


def _firewall_risks(change: ResolvedChange, items: list[dict[str, str]],
                    management: ManagementPath | None) -> list[tuple[str, str]]:
    risks: list[tuple[str, str]] = []
    for item in items:
        merged = {**item, **change.values} if change.action == "set" else item
        if merged.get("chain") == "input":
            risks.append(("high", "changes a firewall input rule, which guards the management path"))
            port = management.port if management else None
            if port is not None and _port_matches(merged.get("dst-port"), port):
                risks.append(("high", f"changes a firewall input rule that matches port {port}, "
                                      "which tikflow connects to"))
        if change.action != "remove" and not (_MATCH_KEYS & merged.keys()):
            risks.append(("high", "a firewall rule with no match conditions applies to all traffic"))
    return risks


def _service_risks(items: list[dict[str, str]], management: ManagementPath) -> list[tuple[str, str]]:
    services = TRANSPORT_SERVICES.get(management.transport or "", ())
    risks: list[tuple[str, str]] = []
    for item in items:
        name = item.get("name", "")
        if name in services or (management.port is not None and item.get("port") == str(management.port)):
            risks.append(("high", f"changes service {name} (port {item.get('port', '?')}), which "
                                  "tikflow connects through"))
    return risks


def _interface_risks(change: ResolvedChange, items: list[dict[str, str]],
                     interface: str) -> list[tuple[str, str]]:
    """Flag a change to the management interface, or to a port or VLAN entry that names it."""
    if change.path in _INTERFACE_REFERENCES:
        keys = _INTERFACE_REFERENCES[change.path]
        merged = [{**item, **change.values} for item in items]
        names = {name for item in merged for key in keys for name in item.get(key, "").split(",")}
    elif change.path.startswith("/interface") and change.action != "add":
        names = {item.get("name") for item in items}
    else:
        return []
    if interface in names:
        return [("high", f"changes interface {interface}, which carries the address tikflow "
                         "reaches the device on")]
    return []


def _port_matches(ports: str | None, port: int) -> bool:
    """Return whether a rule's dst-port matches ``port``; a rule without dst-port matches all."""
    if not ports:
        return True
    negated = ports.startswith("!")
    listed = False
    for part in ports.removeprefix("!").split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (high or low).isdigit() and int(low) <= port <= int(high or low):
            listed = True
    return listed != negated


def on_network(interface_address: str, host: str) -> bool:
    """Return whether ``host`` is on the network of an interface address such as 192.0.2.1/24."""
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_interface(interface_address).network
    except ValueError:
        return False
