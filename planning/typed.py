"""Checks behind the typed planning tools. Every error message names what to change.

The ``check_*`` functions need only the caller's input and run before any device is read.
The ``require_*`` functions compare the input with one device's tables and run per target
device. Both raise ``PlanValidationError``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from planning.validation import PlanValidationError, check_place_before  # noqa: F401 - re-exported

VLAN_MIN, VLAN_MAX = 1, 4094

BUILTIN_FILTER_CHAINS = ("input", "forward", "output")
BUILTIN_NAT_CHAINS = ("srcnat", "dstnat")
FILTER_ACTIONS = frozenset({
    "accept", "drop", "reject", "jump", "return", "passthrough", "log", "tarpit",
    "fasttrack-connection", "add-src-to-address-list", "add-dst-to-address-list",
})
NAT_ACTIONS = frozenset({
    "accept", "masquerade", "src-nat", "dst-nat", "netmap", "redirect", "same", "jump", "return",
    "passthrough", "log", "endpoint-independent-nat", "add-src-to-address-list",
    "add-dst-to-address-list",
})
# RouterOS accepts ports only together with one of these protocols.
PORT_PROTOCOLS = frozenset({"tcp", "udp", "udp-lite", "sctp", "dccp", "6", "17", "132", "33", "136"})
CONNECTION_STATES = frozenset({"established", "related", "new", "invalid", "untracked"})

_CHAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PORT_PART = re.compile(r"^\d{1,5}(-\d{1,5})?$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f]+$")


def check_interface_address(value: str) -> str:
    """Check an IPv4 address with prefix length, e.g. 192.0.2.1/24; return it unchanged."""
    try:
        address = ipaddress.ip_interface(value)
    except ValueError:
        raise PlanValidationError(
            f"address {value!r} is not a valid IPv4 address with prefix length; write it like "
            "192.0.2.1/24") from None
    if address.version != 4:
        raise PlanValidationError(f"address {value!r} is IPv6; these tools plan IPv4 addresses, "
                                  "write it like 192.0.2.1/24")
    if "/" not in value:
        raise PlanValidationError(f"address {value!r} has no prefix length; add one, e.g. {value}/24")
    return value


def check_network(name: str, value: str) -> str:
    """Check an IPv4 network such as 10.0.0.0/8; host bits must be zero."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise PlanValidationError(f"{name} {value!r} is not an IPv4 network ({err}); write it like "
                                  "10.20.0.0/16, or 0.0.0.0/0 for the default route") from None
    if network.version != 4:
        raise PlanValidationError(f"{name} {value!r} is IPv6; write an IPv4 network like 10.20.0.0/16")
    return value


def check_gateway(value: str) -> str:
    """Check a route gateway: an IPv4 address, or ``address%interface``; interfaces are checked later."""
    address, sep, interface = value.partition("%")
    problem = (f"gateway {value!r} is not an IPv4 address or interface name; write it like "
               "192.0.2.254, ether1 or 192.0.2.254%ether1")
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        if sep or not _NAME.match(value) or " " in value:
            raise PlanValidationError(problem) from None
    if sep and not interface.strip():
        raise PlanValidationError(problem)
    return value


def gateway_interface(value: str) -> str | None:
    """Return the interface a gateway names (``ether1`` or ``192.0.2.1%ether1``), if any."""
    if "%" in value:
        return value.split("%", 1)[1]
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return value
    return None


def check_distance(value: int) -> int:
    """Check an administrative distance, 1 to 255."""
    if not 1 <= value <= 255:
        raise PlanValidationError(f"distance {value} is out of range; use 1 to 255")
    return value


def check_ports(name: str, value: str | int) -> str:
    """Check a port list such as ``443``, ``8000-8080`` or ``80,443``; a leading ``!`` negates."""
    text = str(value).strip()
    for part in text.removeprefix("!").split(","):
        if not _PORT_PART.match(part):
            raise PlanValidationError(f"{name} {text!r} is not a port list; use numbers 1-65535, "
                                      "ranges like 8000-8080, separated by commas")
        bounds = [int(p) for p in part.split("-")]
        if not all(1 <= p <= 65535 for p in bounds):
            raise PlanValidationError(f"{name} {text!r} has a port outside 1-65535")
        if bounds != sorted(bounds):
            raise PlanValidationError(f"{name} {text!r} has a reversed range; write the low port first")
    return text


def check_ports_need_protocol(protocol: str | None, ports: dict[str, str]) -> None:
    """Reject ports on a rule without a port-carrying protocol, as RouterOS would at apply time."""
    if not ports:
        return
    if protocol is None or protocol.removeprefix("!") not in PORT_PROTOCOLS:
        names = ", ".join(sorted(ports))
        raise PlanValidationError(f"{names} needs protocol tcp, udp, udp-lite, sctp or dccp; "
                                  f"set protocol (now {protocol or 'unset'})")


def check_address_match(name: str, value: str) -> str:
    """Check a rule address: address, network or ``a-b`` range, optionally negated with ``!``."""
    candidate = value.removeprefix("!")
    low, sep, high = candidate.partition("-")
    try:
        if sep:
            ipaddress.IPv4Address(low)
            ipaddress.IPv4Address(high)
        else:
            ipaddress.IPv4Network(candidate, strict=False)
    except ValueError:
        raise PlanValidationError(f"{name} {value!r} is not an IPv4 address, network or range; "
                                  "write 192.0.2.0/24, 192.0.2.5 or 192.0.2.5-192.0.2.9") from None
    return value


def check_chain(value: str, builtin: Sequence[str]) -> str:
    """Check a chain name: a built-in chain or a custom chain name without spaces."""
    if not _CHAIN.match(value):
        raise PlanValidationError(f"chain {value!r} is not a chain name; use one of "
                                  f"{', '.join(builtin)} or a custom chain name without spaces")
    return value


def check_action(value: str, allowed: Iterable[str], *, jump_target: str | None) -> str:
    """Check a rule action; ``jump`` needs a jump target and nothing else takes one."""
    allowed = sorted(allowed)
    if value not in allowed:
        raise PlanValidationError(f"action {value!r} is not a rule action here; use one of "
                                  f"{', '.join(allowed)}")
    if value == "jump" and not jump_target:
        raise PlanValidationError("action jump needs jump_target, the chain to jump to")
    if value != "jump" and jump_target:
        raise PlanValidationError(f"jump_target only applies to action jump, not {value}; drop it")
    return value


def check_connection_state(values: Sequence[str]) -> str:
    """Check connection states and return them as the comma list RouterOS takes."""
    unknown = [v for v in values if v not in CONNECTION_STATES]
    if unknown or not values:
        raise PlanValidationError(f"connection_state {list(values)} is invalid; use some of "
                                  f"{', '.join(sorted(CONNECTION_STATES))}")
    return ",".join(values)


def check_vlan_ids(values: Sequence[int]) -> str:
    """Check VLAN ids (1-4094, no repeats) and return them as the comma list RouterOS takes."""
    if not values:
        raise PlanValidationError("vlan_ids is empty; give at least one VLAN id from 1 to 4094")
    bad = [v for v in values if not VLAN_MIN <= v <= VLAN_MAX]
    if bad:
        raise PlanValidationError(f"VLAN id {bad[0]} is out of range; use {VLAN_MIN} to {VLAN_MAX}")
    if len(set(values)) != len(values):
        raise PlanValidationError(f"vlan_ids {list(values)} repeats an id; list each VLAN once")
    return ",".join(str(v) for v in values)


def check_vlan_ports(tagged: Sequence[str], untagged: Sequence[str]) -> None:
    """Check that at least one port is given and that no port is both tagged and untagged."""
    if not tagged and not untagged:
        raise PlanValidationError("give tagged or untagged ports for the VLAN; an entry with "
                                  "neither carries no traffic")
    both = sorted(set(tagged) & set(untagged))
    if both:
        raise PlanValidationError(f"port {both[0]} is both tagged and untagged; list it in one of them")


def check_list_entry(value: str) -> str:
    """Check an address-list entry: IPv4 address, network, range or DNS name."""
    try:
        return check_address_match("address", value)
    except PlanValidationError:
        if _HOSTNAME.match(value):
            return value
        raise PlanValidationError(f"address {value!r} is not an IPv4 address, network, range or "
                                  "DNS name; write 192.0.2.0/24, 192.0.2.5-192.0.2.9 or "
                                  "host.example.com") from None


def check_name(field: str, value: str, *, max_length: int = 64) -> str:
    """Check a RouterOS name (identity, list, comment): not empty, printable, bounded."""
    if not value.strip():
        raise PlanValidationError(f"{field} is empty; give a name")
    if len(value) > max_length:
        raise PlanValidationError(f"{field} is {len(value)} characters; use at most {max_length}")
    if not _NAME.match(value):
        raise PlanValidationError(f"{field} {value!r} contains control characters; remove them")
    return value


def check_dns_servers(servers: Sequence[str]) -> str:
    """Check DNS server addresses and return them as the comma list RouterOS takes."""
    if not servers:
        raise PlanValidationError("servers is empty; give at least one DNS server address")
    for server in servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise PlanValidationError(f"DNS server {server!r} is not an IP address; give addresses "
                                      "like 192.0.2.53 or 2001:db8::53") from None
    if len(set(servers)) != len(servers):
        raise PlanValidationError(f"servers {list(servers)} repeats an address; list each once")
    return ",".join(servers)


# -- checks against one device's tables ----------------------------------------------------


def require_interfaces(names: Iterable[str], interfaces: list[dict[str, str]], device: str) -> None:
    """Every interface in ``names`` must exist on the device."""
    known = {row.get("name") for row in interfaces}
    for name in names:
        if name not in known:
            listed = ", ".join(sorted(n for n in known if n)[:20]) or "none"
            raise PlanValidationError(f"interface {name!r} does not exist on {device}; use one of: "
                                      f"{listed}")


def require_vlan_bridge(bridge: str, bridges: list[dict[str, str]], device: str) -> None:
    """The bridge must exist and have VLAN filtering on, or the VLAN table has no effect."""
    row = next((r for r in bridges if r.get("name") == bridge), None)
    if row is None:
        listed = ", ".join(sorted(r.get("name", "") for r in bridges)) or "none"
        raise PlanValidationError(f"bridge {bridge!r} does not exist on {device}; bridges there: {listed}")
    if row.get("vlan-filtering") not in ("true", "yes"):
        raise PlanValidationError(f"bridge {bridge} on {device} has vlan-filtering off, so VLAN "
                                  "entries would not take effect; turn vlan-filtering on first")


def require_bridge_ports(bridge: str, ports: Iterable[str], members: list[dict[str, str]],
                         device: str) -> None:
    """Each port must be a member of ``bridge``; the bridge itself stands for its CPU port."""
    attached = {row.get("interface") for row in members if row.get("bridge") == bridge}
    for port in ports:
        if port != bridge and port not in attached:
            listed = ", ".join(sorted(p for p in attached if p)) or "none"
            raise PlanValidationError(f"port {port!r} is not a port of bridge {bridge} on {device}; "
                                      f"add it to the bridge first or use one of: {listed}")


def require_rule(rule_id: str, rules: list[dict[str, str]], path: str, device: str) -> None:
    """The rule to place before must exist on the device."""
    if not any(row.get(".id") == rule_id for row in rules):
        raise PlanValidationError(f"place_before {rule_id} is not a rule in {path} on {device}; "
                                  "list the rules again and pass an .id from that list")


def require_absent(path: str, rows: list[dict[str, str]], identity: dict[str, str], device: str) -> None:
    """Refuse to add an item that already exists with the same identifying properties."""
    for row in rows:
        if all(row.get(key) == value for key, value in identity.items()):
            properties = " ".join(f"{k}={v}" for k, v in identity.items())
            raise PlanValidationError(f"{path} on {device} already has {properties} ({row.get('.id')}); "
                                      "nothing to add")


def require_new_vlans(bridge: str, vlan_ids: Sequence[int], rows: list[dict[str, str]],
                      device: str) -> None:
    """Refuse VLAN ids that already have an entry on the bridge; that entry should change instead."""
    for row in rows:
        if row.get("bridge") != bridge:
            continue
        clash = sorted(vlan_set(row.get("vlan-ids", "")) & set(vlan_ids))
        if clash:
            raise PlanValidationError(f"VLAN {clash[0]} already has an entry on bridge {bridge} on "
                                      f"{device} ({row.get('.id')}); change that entry instead")


def vlan_set(text: str) -> set[int]:
    """Parse a RouterOS VLAN id list such as ``10,20-22``; unreadable parts are skipped."""
    numbers: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            numbers.update(range(int(low), int(high or low) + 1))
    return numbers
