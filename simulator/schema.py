"""Per-menu rules the simulator applies to writes: known properties, references, duplicates.

The data here is deliberately small. A menu listed with ``properties=None`` accepts any
property name, which is also how menus first seen in a loaded export behave. Listed
properties make a menu strict: anything else fails with ``unknown parameter <name>``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Validator = Callable[[str], bool]

# Properties that every RouterOS table computes and never accepts as input.
COMMON_READ_ONLY = frozenset({"dynamic", "invalid", "running", "slave", "builtin", "default"})

# Properties that hold a boolean wherever they appear. Inputs accept yes/no/true/false and
# replies carry true/false.
COMMON_BOOLEANS = frozenset(
    {
        "disabled",
        "passthrough",
        "log",
        "use-peer-dns",
        "use-peer-ntp",
        "add-default-route",
        "allow-remote-requests",
        "vlan-filtering",
        "enabled",
        "add-arp",
        "ipv6-enabled",
        "check-gateway-enabled",
    }
)


def is_ip_address(value: str) -> bool:
    """Return whether ``value`` is an IPv4/IPv6 address with an optional prefix length."""
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return False
    return True


def is_ip_network(value: str) -> bool:
    """Return whether ``value`` is an address or a network, with a non-strict prefix."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def is_address_or_range(value: str) -> bool:
    """Return whether ``value`` is an address, a CIDR or a ``a-b`` address range."""
    if is_ip_network(value):
        return True
    low, sep, high = value.partition("-")
    return bool(sep) and is_ip_network(low) and is_ip_network(high)


def is_negatable(check: Validator) -> Validator:
    """Wrap ``check`` so that a leading ``!`` (RouterOS negation) is accepted too."""
    return lambda value: check(value[1:] if value.startswith("!") else value)


def is_port_list(value: str) -> bool:
    """Return whether ``value`` is a comma list of ports or ``low-high`` port ranges."""
    for part in value.split(","):
        low, _, high = part.partition("-")
        for number in (low, high) if high else (low,):
            if not number.isdigit() or not 0 <= int(number) <= 65535:
                return False
    return bool(value)


def is_integer(value: str) -> bool:
    """Return whether ``value`` is a non-negative decimal integer."""
    return value.isdigit()


@dataclass(frozen=True)
class MenuSchema:
    """Write rules for one menu path.

    Attributes:
        singleton: The menu contains exactly one item without ``.id`` (``/ip/dns``).
        properties: Accepted writable property names, or ``None`` for any name.
        required: Properties that ``add`` must be given.
        references: Property name -> kind of object it must name (``"interface"``).
        unique: Property tuple whose values may not repeat, with the failure text.
        yes_no: Properties that accept only ``yes``/``no``.
        booleans: Extra boolean properties beyond :data:`COMMON_BOOLEANS`.
        flags: Flag properties, set by presence and unset with ``!name``.
        validators: Property name -> value check, failing with ``invalid value for argument``.
        read_only: Extra computed properties that reject input.
        interface_type: ``type`` shown in ``/interface`` for items of an interface menu.
    """

    singleton: bool = False
    properties: frozenset[str] | None = None
    required: tuple[str, ...] = ()
    references: Mapping[str, str] = field(default_factory=dict)
    unique: tuple[tuple[str, ...], str] | None = None
    yes_no: frozenset[str] = frozenset()
    booleans: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    validators: Mapping[str, Validator] = field(default_factory=dict)
    read_only: frozenset[str] = frozenset()
    interface_type: str | None = None

    def is_boolean(self, name: str) -> bool:
        """Return whether ``name`` is a boolean property in this menu."""
        return name in COMMON_BOOLEANS or name in self.booleans or name in self.yes_no

    def rejects_input(self, name: str) -> bool:
        """Return whether ``name`` is computed and cannot be written."""
        return name in COMMON_READ_ONLY or name in self.read_only


GENERIC = MenuSchema()
GENERIC_SINGLETON = MenuSchema(singleton=True)

_FIREWALL_VALIDATORS: dict[str, Validator] = {
    "src-address": is_negatable(is_address_or_range),
    "dst-address": is_negatable(is_address_or_range),
    "src-port": is_negatable(is_port_list),
    "dst-port": is_negatable(is_port_list),
    "port": is_negatable(is_port_list),
}
_FIREWALL = MenuSchema(
    required=("chain",),
    references={"in-interface": "interface", "out-interface": "interface"},
    validators=_FIREWALL_VALIDATORS,
)


def _interface_menu(kind: str, **overrides: object) -> MenuSchema:
    return MenuSchema(interface_type=kind, **overrides)  # type: ignore[arg-type]


MENUS: dict[str, MenuSchema] = {
    "/ip/address": MenuSchema(
        properties=frozenset({"address", "interface", "network", "comment", "disabled", "netmask", "broadcast"}),
        required=("address", "interface"),
        references={"interface": "interface"},
        unique=(("address", "interface"), "failure: already have such address"),
        validators={"address": is_ip_address, "network": is_ip_network},
        read_only=frozenset({"actual-interface"}),
    ),
    "/ipv6/address": MenuSchema(
        required=("address",),
        references={"interface": "interface"},
        unique=(("address", "interface"), "failure: already have such address"),
        validators={"address": is_ip_address},
        read_only=frozenset({"actual-interface", "link-local", "global"}),
        booleans=frozenset({"advertise", "eui-64", "no-dad"}),
    ),
    "/ip/route": MenuSchema(
        validators={"dst-address": is_ip_network},
        flags=frozenset({"blackhole"}),
        read_only=frozenset({"active", "immediate-gw", "static", "connect", "inactive"}),
    ),
    "/ipv6/route": MenuSchema(validators={"dst-address": is_ip_network}, flags=frozenset({"blackhole"})),
    "/ip/firewall/filter": _FIREWALL,
    "/ip/firewall/nat": _FIREWALL,
    "/ip/firewall/mangle": _FIREWALL,
    "/ip/firewall/raw": _FIREWALL,
    "/ipv6/firewall/filter": _FIREWALL,
    "/ipv6/firewall/raw": _FIREWALL,
    "/ip/firewall/address-list": MenuSchema(
        required=("list", "address"),
        unique=(("list", "address"), "failure: already have such entry"),
    ),
    "/ip/pool": MenuSchema(required=("name",), unique=(("name",), "failure: pool with such name exists")),
    "/ip/dhcp-server": MenuSchema(references={"interface": "interface"}),
    "/ip/dhcp-client": MenuSchema(
        references={"interface": "interface"},
        unique=(("interface",), "failure: dhcp-client already exists on this interface"),
    ),
    "/ip/dns": MenuSchema(singleton=True),
    "/ip/service": MenuSchema(validators={"port": is_port_list}),
    "/system/identity": MenuSchema(singleton=True, properties=frozenset({"name"})),
    "/system/clock": MenuSchema(singleton=True),
    "/system/note": MenuSchema(singleton=True),
    "/system/ntp/client": MenuSchema(singleton=True),
    "/snmp": MenuSchema(singleton=True),
    "/ip/settings": MenuSchema(singleton=True),
    "/ipv6/settings": MenuSchema(singleton=True),
    "/ip/neighbor/discovery-settings": MenuSchema(singleton=True),
    "/system/routerboard/settings": MenuSchema(singleton=True),
    "/system/watchdog": MenuSchema(singleton=True),
    "/routing/table": MenuSchema(flags=frozenset({"fib"})),
    "/routing/ospf/interface-template": MenuSchema(flags=frozenset({"passive"})),
    "/interface/ethernet": _interface_menu(
        "ether",
        yes_no=frozenset({"power-cycle-ping-enabled"}),
        read_only=frozenset({"default-name", "mac-address", "orig-mac-address"}),
    ),
    "/interface/bridge": _interface_menu("bridge", required=("name",)),
    "/interface/vlan": _interface_menu(
        "vlan",
        required=("name", "vlan-id", "interface"),
        references={"interface": "interface"},
        validators={"vlan-id": is_integer},
    ),
    "/interface/bonding": _interface_menu("bond", required=("name",)),
    "/interface/wireguard": _interface_menu("wg", required=("name",)),
    "/interface/vrrp": _interface_menu("vrrp", required=("name",)),
    "/interface/eoip": _interface_menu("eoip-tunnel", required=("name",)),
    "/interface/gre": _interface_menu("gre-tunnel", required=("name",)),
    "/interface/ipip": _interface_menu("ipip-tunnel", required=("name",)),
    "/interface/vxlan": _interface_menu("vxlan", required=("name",)),
    "/interface/veth": _interface_menu("veth", required=("name",)),
    "/interface/6to4": _interface_menu("6to4-tunnel", required=("name",)),
    "/interface/wireless": _interface_menu("wlan"),
    "/interface/wifi": _interface_menu("wifi"),
    "/interface/pppoe-client": _interface_menu("pppoe-out", required=("name",)),
    "/interface/bridge/port": MenuSchema(
        required=("bridge", "interface"),
        references={"interface": "interface", "bridge": "interface"},
        unique=(("interface",), "failure: device already added as bridge port"),
    ),
    "/interface/list": MenuSchema(required=("name",), unique=(("name",), "failure: list with such name exists")),
    "/interface/list/member": MenuSchema(required=("list", "interface")),
    "/user": MenuSchema(
        required=("name", "group"),
        references={"group": "user-group"},
        unique=(("name",), "failure: user with the same name already exists"),
        read_only=frozenset({"last-logged-in"}),
    ),
    "/user/group": MenuSchema(required=("name",), unique=(("name",), "failure: group with the same name already exists")),
    "/system/scheduler": MenuSchema(
        required=("name",),
        unique=(("name",), "failure: item with such name already exists"),
        read_only=frozenset({"next-run", "run-count", "owner"}),
    ),
    "/system/script": MenuSchema(required=("name",), read_only=frozenset({"owner", "run-count", "last-started"})),
    "/file": MenuSchema(read_only=frozenset({"size", "type", "creation-time", "last-modified"})),
}

# Menus known to exist on every device even while empty, so printing them is not an error.
KNOWN_EMPTY_MENUS = frozenset(MENUS) | {
    "/interface",
    "/log",
    "/ip/dhcp-server/network",
    "/ip/dhcp-server/lease",
    "/ip/arp",
    "/ip/neighbor",
    "/ip/ipsec/profile",
    "/ip/hotspot",
    "/ip/firewall/connection",
    "/ipv6/firewall/address-list",
    "/ipv6/firewall/mangle",
    "/ipv6/nd",
    "/ipv6/pool",
    "/interface/wireguard/peers",
    "/interface/bridge/vlan",
    "/routing/bgp/connection",
    "/routing/bgp/template",
    "/routing/filter/rule",
    "/routing/ospf/instance",
    "/routing/ospf/area",
    "/system/logging",
    "/system/logging/action",
    "/system/package",
    "/system/history",
    "/tool/netwatch",
    "/queue/simple",
    "/ppp/secret",
    "/ppp/profile",
    "/certificate",
}

INTERFACE_MENUS: dict[str, str] = {
    path: schema.interface_type for path, schema in MENUS.items() if schema.interface_type is not None
}


def schema_for(path: str, *, singleton_hint: bool = False) -> MenuSchema:
    """Return the rules for ``path``, or generic rules for a menu the simulator does not model."""
    schema = MENUS.get(path)
    if schema is not None:
        return schema
    return GENERIC_SINGLETON if singleton_hint else GENERIC
