"""Typed planning tools: one tool per common change, each checking its input before planning.

Each tool validates what it can without a device and then resolves the target devices (a
list, a tag or an environment). It checks the input against every target's tables
(interfaces, bridge ports, the rule to place before) and stores an ordinary plan, exactly as
plan.create.v1 would. Nothing changes on a device until plan.apply.v1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from mcp.types import ToolAnnotations
from pydantic import Field

from api.mcp_tools import PlanCreated, ToolRunner
from api.plan_actions import RolloutOptions
from api.services import Services
from api.targeting import resolve_authorized_targets
from planning import typed
from planning.model import ChangeRequest
from planning.validation import PlanValidationError
from routeros.errors import UnknownPath
from storage.models import Device

PLAN = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                       open_world_hint=False)

Description = Annotated[str, Field(description="What the plan does and why; shown to approvers")]
Devices = Annotated[list[str] | None, Field(description="Device ids or names to change")]
Tag = Annotated[str | None, Field(description="Change every active device with this tag")]
Environment = Annotated[str | None, Field(
    description="Change every active device in this environment: lab, staging or prod")]
Comment = Annotated[str | None, Field(description="Comment stored on the new item")]
Rollout = Annotated[RolloutOptions | None, Field(
    description="Canary, batch size and health checks for a multi-device plan; settings apply "
                "when omitted")]
PlaceBefore = Annotated[str | int | None, Field(
    description="The .id of the rule (like *5) to insert the new rule before, from the list "
                "tools; positions are rejected. Omit to append at the end of the table")]

TARGETS_HELP = (" Target devices with `devices`, `tag` or `environment`; each target device gets "
                "the change and its own diff. Returns the plan id, hash, risk and diff; nothing "
                "changes until plan.apply.v1.")


@dataclass(frozen=True)
class PlanHelpers:
    """Plan storage shared with plan.create.v1, passed in by ``register_tools``."""

    create: Callable[[str, list[ChangeRequest], RolloutOptions | None], Awaitable[PlanCreated]]


class DeviceTables:
    """Tables read from the target devices during one tool call, each read once."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._rows: dict[tuple[str, str], list[dict[str, str]]] = {}

    async def read(self, device: Device, path: str) -> list[dict[str, str]]:
        key = (device.id, path)
        if key not in self._rows:
            try:
                async with self.services.sessions.session(device) as client:
                    self._rows[key] = await client.print(path)
            except UnknownPath:
                raise PlanValidationError(
                    f"{path} is not a menu on {device.name} (RouterOS {device.version or 'unknown'}),"
                    " so this change cannot be planned there; leave the device out of the target"
                ) from None
        return self._rows[key]


ChangeBuilder = Callable[[Device, DeviceTables], Awaitable[list[ChangeRequest]]]


def _optional(**values: str | int | None) -> dict[str, str]:
    """Return the given RouterOS properties that are set, as strings; names use dashes."""
    return {key.replace("_", "-"): str(value) for key, value in values.items() if value is not None}


def register_typed_tools(runner: ToolRunner, services: Services, helpers: PlanHelpers) -> None:
    """Register the typed planning tools on ``runner``."""

    async def plan_for_targets(description: str, devices: list[str] | None, tag: str | None,
                               environment: str | None, rollout: RolloutOptions | None,
                               build: ChangeBuilder) -> PlanCreated:
        targets = await resolve_authorized_targets(services.inventory, devices=devices, tag=tag,
                                                   environment=environment)
        tables = DeviceTables(services)
        requests: list[ChangeRequest] = []
        for device in targets:
            requests.extend(await build(device, tables))
        return await helpers.create(description, requests, rollout)

    _register_address_tools(runner, plan_for_targets)
    _register_route_tool(runner, plan_for_targets)
    _register_firewall_tools(runner, plan_for_targets)
    _register_settings_tools(runner, plan_for_targets)
    _register_bridge_vlan_tool(runner, plan_for_targets)


PlanForTargets = Callable[
    [str, list[str] | None, str | None, str | None, RolloutOptions | None, ChangeBuilder],
    Awaitable[PlanCreated]]


def _register_address_tools(runner: ToolRunner, plan_for_targets: PlanForTargets) -> None:
    @runner.tool("plan.ip_address.add.v1", title="Plan adding an IP address", tier="plan",
                 annotations=PLAN,
                 description="Plan adding an IPv4 address with prefix (192.0.2.1/24) to an existing "
                             "interface." + TARGETS_HELP)
    async def plan_ip_address_add(
        description: Description,
        address: Annotated[str, Field(description="IPv4 address with prefix length, e.g. 192.0.2.1/24")],
        interface: Annotated[str, Field(description="Interface name on the device, e.g. ether2")],
        comment: Comment = None,
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        typed.check_interface_address(address)
        values = {"address": address, "interface": interface} | _optional(comment=comment)

        async def build(device: Device, tables: DeviceTables) -> list[ChangeRequest]:
            typed.require_interfaces([interface], await tables.read(device, "/interface"), device.name)
            typed.require_absent("/ip/address", await tables.read(device, "/ip/address"),
                                 {"address": address, "interface": interface}, device.name)
            return [ChangeRequest(device=device.id, path="/ip/address", action="add", values=values)]

        return await plan_for_targets(description, devices, tag, environment, rollout, build)

    @runner.tool("plan.ip_address.remove.v1", title="Plan removing an IP address", tier="plan",
                 annotations=PLAN,
                 description="Plan removing an IPv4 address (as listed, with prefix) from the "
                             "device, optionally only from one interface." + TARGETS_HELP)
    async def plan_ip_address_remove(
        description: Description,
        address: Annotated[str, Field(description="IPv4 address with prefix length, e.g. 192.0.2.1/24")],
        interface: Annotated[str | None, Field(description="Only remove it from this interface")] = None,
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        typed.check_interface_address(address)
        where = {"address": address} | _optional(interface=interface)

        async def build(device: Device, tables: DeviceTables) -> list[ChangeRequest]:
            rows = await tables.read(device, "/ip/address")
            if not any(all(row.get(k) == v for k, v in where.items()) for row in rows):
                raise PlanValidationError(f"address {address} is not on {device.name}"
                                          + (f" interface {interface}" if interface else "")
                                          + "; list the addresses with ip.address.list.v2")
            return [ChangeRequest(device=device.id, path="/ip/address", action="remove", where=where)]

        return await plan_for_targets(description, devices, tag, environment, rollout, build)


def _register_route_tool(runner: ToolRunner, plan_for_targets: PlanForTargets) -> None:
    @runner.tool("plan.route.add.v1", title="Plan adding a static route", tier="plan",
                 annotations=PLAN,
                 description="Plan adding a static IPv4 route: destination network, gateway "
                             "address or interface, optional distance (1-255)." + TARGETS_HELP)
    async def plan_route_add(
        description: Description,
        dst_address: Annotated[str, Field(description="Destination network, e.g. 10.20.0.0/16")],
        gateway: Annotated[str, Field(description="Gateway address (192.0.2.254), interface name, "
                                                  "or address%interface")],
        distance: Annotated[int | None, Field(description="Administrative distance, 1-255")] = None,
        routing_table: Annotated[str | None, Field(description="Routing table; default main")] = None,
        comment: Comment = None,
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        typed.check_network("dst_address", dst_address)
        typed.check_gateway(gateway)
        if distance is not None:
            typed.check_distance(distance)
        if routing_table is not None:
            typed.check_name("routing_table", routing_table)
        values = {"dst-address": dst_address, "gateway": gateway} | _optional(
            distance=distance, routing_table=routing_table, comment=comment)
        via = typed.gateway_interface(gateway)

        async def build(device: Device, tables: DeviceTables) -> list[ChangeRequest]:
            if via is not None:
                typed.require_interfaces([via], await tables.read(device, "/interface"), device.name)
            return [ChangeRequest(device=device.id, path="/ip/route", action="add", values=values)]

        return await plan_for_targets(description, devices, tag, environment, rollout, build)


def _rule_values(*, chain: str, action: str, protocol: str | None, src_address: str | None,
                 dst_address: str | None, src_port: str | int | None, dst_port: str | int | None,
                 in_interface: str | None, out_interface: str | None, comment: str | None,
                 extra: dict[str, str]) -> dict[str, str]:
    """Check the match conditions shared by filter and NAT rules and return the rule's values."""
    ports = {}
    if src_port is not None:
        ports["src-port"] = typed.check_ports("src_port", src_port)
    if dst_port is not None:
        ports["dst-port"] = typed.check_ports("dst_port", dst_port)
    typed.check_ports_need_protocol(protocol, ports)
    for name, value in (("src_address", src_address), ("dst_address", dst_address)):
        if value is not None:
            typed.check_address_match(name, value)
    return {"chain": chain, "action": action} | _optional(
        protocol=protocol, src_address=src_address, dst_address=dst_address,
        in_interface=in_interface, out_interface=out_interface) | ports | extra | _optional(
        comment=comment)


def _rule_builder(path: str, values: dict[str, str], place_before: str | None,
                  interfaces: list[str]) -> ChangeBuilder:
    async def build(device: Device, tables: DeviceTables) -> list[ChangeRequest]:
        if interfaces:
            typed.require_interfaces(interfaces, await tables.read(device, "/interface"), device.name)
        rule_values = dict(values)
        if place_before is not None:
            typed.require_rule(place_before, await tables.read(device, path), path, device.name)
            rule_values["place-before"] = place_before
        return [ChangeRequest(device=device.id, path=path, action="add", values=rule_values)]

    return build


def _one_device_for_placement(place_before: str | None, devices: list[str] | None,
                              tag: str | None, environment: str | None) -> None:
    if place_before is not None and (tag or environment or len(devices or []) != 1):
        raise PlanValidationError("place_before names a rule .id, which differs between devices; "
                                  "target exactly one device with devices=[...] when you place a rule")


def _register_firewall_tools(runner: ToolRunner, plan_for_targets: PlanForTargets) -> None:
    @runner.tool("plan.firewall_filter.add.v1", title="Plan adding a firewall filter rule",
                 tier="plan", annotations=PLAN,
                 description="Plan adding a firewall filter rule (/ip/firewall/filter). Chains: "
                             "input, forward, output or a custom chain. Ports need protocol tcp or "
                             "udp. Place it with place_before = the .id of an existing rule; numeric "
                             "positions are refused because they shift." + TARGETS_HELP)
    async def plan_firewall_filter_add(
        description: Description,
        chain: Annotated[str, Field(description="input, forward, output or a custom chain")],
        action: Annotated[str, Field(description="accept, drop, reject, jump, return, log, ...")],
        protocol: Annotated[str | None, Field(description="tcp, udp, icmp, ...")] = None,
        src_address: Annotated[str | None, Field(description="Address, network or range")] = None,
        dst_address: Annotated[str | None, Field(description="Address, network or range")] = None,
        src_port: Annotated[str | int | None, Field(description="Ports like 443 or 8000-8080,9000")] = None,
        dst_port: Annotated[str | int | None, Field(description="Ports like 443 or 8000-8080,9000")] = None,
        in_interface: Annotated[str | None, Field(description="Incoming interface")] = None,
        out_interface: Annotated[str | None, Field(description="Outgoing interface")] = None,
        connection_state: Annotated[list[str] | None, Field(
            description="Some of established, related, new, invalid, untracked")] = None,
        src_address_list: Annotated[str | None, Field(description="Source address list")] = None,
        dst_address_list: Annotated[str | None, Field(description="Destination address list")] = None,
        jump_target: Annotated[str | None, Field(description="Chain to jump to (action jump)")] = None,
        place_before: PlaceBefore = None,
        comment: Comment = None,
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        typed.check_chain(chain, typed.BUILTIN_FILTER_CHAINS)
        typed.check_action(action, typed.FILTER_ACTIONS, jump_target=jump_target)
        placement = typed.check_place_before(place_before)
        _one_device_for_placement(placement, devices, tag, environment)
        extra = _optional(src_address_list=src_address_list, dst_address_list=dst_address_list,
                          jump_target=jump_target)
        if connection_state is not None:
            extra["connection-state"] = typed.check_connection_state(connection_state)
        values = _rule_values(chain=chain, action=action, protocol=protocol, src_address=src_address,
                              dst_address=dst_address, src_port=src_port, dst_port=dst_port,
                              in_interface=in_interface, out_interface=out_interface,
                              comment=comment, extra=extra)
        interfaces = [i for i in (in_interface, out_interface) if i]
        build = _rule_builder("/ip/firewall/filter", values, placement, interfaces)
        return await plan_for_targets(description, devices, tag, environment, rollout, build)

    @runner.tool("plan.firewall_nat.add.v1", title="Plan adding a NAT rule", tier="plan",
                 annotations=PLAN,
                 description="Plan adding a NAT rule (/ip/firewall/nat). Chains: srcnat, dstnat or a "
                             "custom chain. dst-nat and src-nat need to_addresses or to_ports. Place "
                             "it with place_before = the .id of an existing rule; numeric positions "
                             "are refused." + TARGETS_HELP)
    async def plan_firewall_nat_add(
        description: Description,
        chain: Annotated[str, Field(description="srcnat, dstnat or a custom chain")],
        action: Annotated[str, Field(description="masquerade, src-nat, dst-nat, redirect, ...")],
        protocol: Annotated[str | None, Field(description="tcp, udp, ...")] = None,
        src_address: Annotated[str | None, Field(description="Address, network or range")] = None,
        dst_address: Annotated[str | None, Field(description="Address, network or range")] = None,
        src_port: Annotated[str | int | None, Field(description="Ports like 443 or 8000-8080")] = None,
        dst_port: Annotated[str | int | None, Field(description="Ports like 443 or 8000-8080")] = None,
        in_interface: Annotated[str | None, Field(description="Incoming interface")] = None,
        out_interface: Annotated[str | None, Field(description="Outgoing interface")] = None,
        to_addresses: Annotated[str | None, Field(description="Translated address or range")] = None,
        to_ports: Annotated[str | int | None, Field(description="Translated port or range")] = None,
        jump_target: Annotated[str | None, Field(description="Chain to jump to (action jump)")] = None,
        place_before: PlaceBefore = None,
        comment: Comment = None,
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        typed.check_chain(chain, typed.BUILTIN_NAT_CHAINS)
        typed.check_action(action, typed.NAT_ACTIONS, jump_target=jump_target)
        placement = typed.check_place_before(place_before)
        _one_device_for_placement(placement, devices, tag, environment)
        extra = _optional(jump_target=jump_target)
        if to_addresses is not None:
            extra["to-addresses"] = typed.check_address_match("to_addresses", to_addresses)
        if to_ports is not None:
            extra["to-ports"] = typed.check_ports("to_ports", to_ports)
            typed.check_ports_need_protocol(protocol, {"to-ports": extra["to-ports"]})
        if action in ("dst-nat", "src-nat", "netmap") and not (to_addresses or to_ports):
            raise PlanValidationError(f"action {action} needs to_addresses or to_ports, the "
                                      "translation target")
        values = _rule_values(chain=chain, action=action, protocol=protocol, src_address=src_address,
                              dst_address=dst_address, src_port=src_port, dst_port=dst_port,
                              in_interface=in_interface, out_interface=out_interface,
                              comment=comment, extra=extra)
        interfaces = [i for i in (in_interface, out_interface) if i]
        build = _rule_builder("/ip/firewall/nat", values, placement, interfaces)
        return await plan_for_targets(description, devices, tag, environment, rollout, build)

    @runner.tool("plan.address_list.add.v1", title="Plan adding an address-list entry",
                 tier="plan", annotations=PLAN,
                 description="Plan adding an address, network, range or DNS name to a firewall "
                             "address list (/ip/firewall/address-list)." + TARGETS_HELP)
    async def plan_address_list_add(
        description: Description,
        list_name: Annotated[str, Field(description="Address list name, e.g. blocked")],
        address: Annotated[str, Field(description="192.0.2.5, 192.0.2.0/24, a range or a DNS name")],
        # The RouterOS property is called timeout; it is not a deadline for this coroutine.
        timeout: Annotated[str | None, Field(description="RouterOS duration after which the entry "  # noqa: ASYNC109
                                                         "expires, e.g. 1d or 00:30:00")] = None,
        comment: Comment = None,
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        typed.check_name("list_name", list_name)
        typed.check_list_entry(address)
        values = {"list": list_name, "address": address} | _optional(timeout=timeout, comment=comment)

        async def build(device: Device, tables: DeviceTables) -> list[ChangeRequest]:
            typed.require_absent("/ip/firewall/address-list",
                                 await tables.read(device, "/ip/firewall/address-list"),
                                 {"list": list_name, "address": address}, device.name)
            return [ChangeRequest(device=device.id, path="/ip/firewall/address-list", action="add",
                                  values=values)]

        return await plan_for_targets(description, devices, tag, environment, rollout, build)


def _register_settings_tools(runner: ToolRunner, plan_for_targets: PlanForTargets) -> None:
    @runner.tool("plan.dns.set_servers.v1", title="Plan setting the DNS servers", tier="plan",
                 annotations=PLAN,
                 description="Plan replacing the DNS servers of /ip/dns with the given addresses, "
                             "and optionally switching remote requests." + TARGETS_HELP)
    async def plan_dns_set_servers(
        description: Description,
        servers: Annotated[list[str], Field(description="DNS server addresses, in order")],
        allow_remote_requests: Annotated[bool | None, Field(
            description="Answer DNS queries from the network")] = None,
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        values = {"servers": typed.check_dns_servers(servers)}
        if allow_remote_requests is not None:
            values["allow-remote-requests"] = "yes" if allow_remote_requests else "no"

        async def build(device: Device, tables: DeviceTables) -> list[ChangeRequest]:
            return [ChangeRequest(device=device.id, path="/ip/dns", action="set", values=values)]

        return await plan_for_targets(description, devices, tag, environment, rollout, build)

    @runner.tool("plan.interface.set_enabled.v1", title="Plan enabling or disabling an interface",
                 tier="plan", annotations=PLAN,
                 description="Plan enabling or disabling an interface by name. Disabling the "
                             "interface tikflow reaches the device through is scored high risk."
                             + TARGETS_HELP)
    async def plan_interface_set_enabled(
        description: Description,
        interface: Annotated[str, Field(description="Interface name, e.g. ether3")],
        enabled: Annotated[bool, Field(description="true to enable, false to disable")],
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        typed.check_name("interface", interface)
        values = {"disabled": "no" if enabled else "yes"}

        async def build(device: Device, tables: DeviceTables) -> list[ChangeRequest]:
            typed.require_interfaces([interface], await tables.read(device, "/interface"), device.name)
            return [ChangeRequest(device=device.id, path="/interface", action="set",
                                  where={"name": interface}, values=values)]

        return await plan_for_targets(description, devices, tag, environment, rollout, build)

    @runner.tool("plan.system_identity.set.v1", title="Plan setting the system identity",
                 tier="plan", annotations=PLAN,
                 description="Plan setting the device's identity (/system/identity name)." + TARGETS_HELP)
    async def plan_system_identity_set(
        description: Description,
        name: Annotated[str, Field(description="New identity, at most 64 characters")],
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        typed.check_name("name", name)

        async def build(device: Device, tables: DeviceTables) -> list[ChangeRequest]:
            return [ChangeRequest(device=device.id, path="/system/identity", action="set",
                                  values={"name": name})]

        return await plan_for_targets(description, devices, tag, environment, rollout, build)


def _register_bridge_vlan_tool(runner: ToolRunner, plan_for_targets: PlanForTargets) -> None:
    @runner.tool("plan.bridge_vlan.add.v1", title="Plan adding VLANs to a bridge", tier="plan",
                 annotations=PLAN,
                 description="Plan adding a bridge VLAN entry (/interface/bridge/vlan): VLAN ids "
                             "1-4094 with tagged and untagged ports. The bridge must have "
                             "vlan-filtering on and every port must already be a port of that "
                             "bridge; the bridge's own name stands for its CPU port." + TARGETS_HELP)
    async def plan_bridge_vlan_add(
        description: Description,
        bridge: Annotated[str, Field(description="Bridge name, e.g. bridge1")],
        vlan_ids: Annotated[list[int], Field(description="VLAN ids, 1-4094")],
        tagged: Annotated[list[str] | None, Field(description="Ports that carry the VLANs tagged")] = None,
        untagged: Annotated[list[str] | None, Field(description="Ports that carry them untagged")] = None,
        comment: Comment = None,
        devices: Devices = None, tag: Tag = None, environment: Environment = None,
        rollout: Rollout = None,
    ) -> PlanCreated:
        tagged, untagged = tagged or [], untagged or []
        ids = typed.check_vlan_ids(vlan_ids)
        typed.check_vlan_ports(tagged, untagged)
        values = {"bridge": bridge, "vlan-ids": ids} | _optional(
            tagged=",".join(tagged) or None, untagged=",".join(untagged) or None, comment=comment)

        async def build(device: Device, tables: DeviceTables) -> list[ChangeRequest]:
            typed.require_vlan_bridge(bridge, await tables.read(device, "/interface/bridge"), device.name)
            typed.require_bridge_ports(bridge, [*tagged, *untagged],
                                       await tables.read(device, "/interface/bridge/port"), device.name)
            typed.require_new_vlans(bridge, vlan_ids, await tables.read(device, "/interface/bridge/vlan"),
                               device.name)
            return [ChangeRequest(device=device.id, path="/interface/bridge/vlan", action="add",
                                  values=values)]

        return await plan_for_targets(description, devices, tag, environment, rollout, build)

