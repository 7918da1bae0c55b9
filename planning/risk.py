"""Risk scoring with reasons: what a change could break, and how many devices it reaches."""

from __future__ import annotations

import ipaddress

from planning.model import ResolvedChange, RiskAssessment

# Menus whose change can cut tikflow off from the device.
MANAGEMENT_PATHS = frozenset(
    {"/ip/service", "/user", "/user/group", "/ip/route", "/interface/bridge", "/interface/vlan",
     "/interface/bridge/vlan", "/interface/bridge/port", "/ip/firewall/filter", "/ip/address"}
)
_LEVELS = {"low": 0, "medium": 1, "high": 2}
_MATCH_KEYS = frozenset(
    {"src-address", "dst-address", "protocol", "dst-port", "src-port", "in-interface",
     "out-interface", "src-address-list", "dst-address-list", "connection-state",
     "in-interface-list", "out-interface-list", "icmp-options", "tcp-flags", "layer7-protocol",
     "packet-mark", "connection-mark", "routing-mark", "src-mac-address", "connection-nat-state"}
)


def assess(changes: list[ResolvedChange], management: dict[str, str],
           environments: dict[str, str]) -> RiskAssessment:
    """Score a plan.

    Args:
        changes: the resolved changes.
        management: device id -> the address tikflow reaches the device on.
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
    return RiskAssessment(
        level=level,
        reasons=reasons or ["adds or changes items away from the management path"],
        blast_radius={"devices": len(devices), "environments": len(envs)},
    )


def _change_risks(change: ResolvedChange, management_address: str | None) -> list[tuple[str, str]]:
    risks: list[tuple[str, str]] = []
    items = [t.before for t in change.targets] + ([change.values] if change.action == "add" else [])
    if change.action in ("set", "remove"):
        risks.append(("medium", f"{change.action} changes existing items in {change.path}"))
    if change.path == "/ip/firewall/filter":
        for item in items:
            merged = {**item, **change.values} if change.action == "set" else item
            if merged.get("chain") == "input":
                risks.append(("high", "changes a firewall input rule, which guards the management path"))
            if change.action != "remove" and not (_MATCH_KEYS & merged.keys()):
                risks.append(("high", "a firewall rule with no match conditions applies to all traffic"))
    if change.path in ("/ip/service", "/user", "/user/group"):
        risks.append(("high", f"changes {change.path}, which tikflow uses to log in"))
    if change.path == "/ip/route":
        for item in items:
            if item.get("dst-address") in ("0.0.0.0/0", "::/0"):
                risks.append(("high", "changes a default route"))
    if change.path == "/ip/address" and management_address and change.action != "add":
        for target in change.targets:
            if _contains(target.before.get("address", ""), management_address):
                risks.append(("high", "changes the address tikflow reaches the device on"))
    return risks


def _contains(interface_address: str, host: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_interface(interface_address).network
    except ValueError:
        return False
