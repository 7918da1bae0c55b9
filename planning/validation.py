"""Input checks run before anything is planned; each error names what to change."""

from __future__ import annotations

import ipaddress
import re

from planning.model import ChangeRequest

# Menus with a single item and no .id: set applies to the menu itself.
SINGLETON_PATHS = frozenset(
    {
        "/ip/dns",
        "/system/identity",
        "/system/clock",
        "/system/ntp/client",
        "/snmp",
        "/ip/settings",
        "/ipv6/settings",
        "/system/routerboard/settings",
        "/ip/cloud",
        "/ip/ssh",
        "/system/note",
    }
)

_PATH_RE = re.compile(r"^(/[a-z0-9][a-z0-9-]*)+$")
_PORT_RE = re.compile(r"^\d{1,5}(-\d{1,5})?$")
_ITEM_ID = re.compile(r"^\*[0-9A-Fa-f]+$")
_ADDRESS_KEYS = frozenset({"src-address", "dst-address", "to-addresses"})


class PlanValidationError(ValueError):
    """A change request cannot be planned; the message names what to change."""


def normalise_path(path: str) -> str:
    """Accept CLI (``/ip address``) and API (``/ip/address``) spellings; return the API form."""
    cleaned = "/" + "/".join(part for part in re.split(r"[\s/]+", path.strip()) if part)
    if not _PATH_RE.match(cleaned):
        raise PlanValidationError(
            f"path {path!r} is not a RouterOS menu path; write it like /ip/address or "
            "/ip/firewall/filter"
        )
    return cleaned


def check_request(request: ChangeRequest, path: str) -> None:
    """Check the shape of one change request before any device is read."""
    if request.action not in ("add", "set", "remove"):
        raise PlanValidationError(
            f"action {request.action!r} is not one of add, set, remove; use add for a new item, "
            "set to change items selected by 'where', remove to delete them")
    singleton = path in SINGLETON_PATHS
    if request.action == "add":
        if singleton:
            raise PlanValidationError(f"{path} has a single item; use action 'set', not 'add'")
        if not request.values:
            raise PlanValidationError(f"'add' on {path} needs 'values' with the new item's properties")
        if request.where:
            raise PlanValidationError("'add' takes no 'where'; remove it or use action 'set'")
    if request.action == "set":
        if not request.values:
            raise PlanValidationError(f"'set' on {path} needs 'values' with the properties to write")
        if not request.where and not singleton:
            raise PlanValidationError(
                f"'set' on {path} needs 'where' selecting the items to change, e.g. "
                '{"address": "192.0.2.1/24"} or {".id": "*3"}'
            )
    if request.action == "remove":
        if singleton:
            raise PlanValidationError(f"{path} has a single item that cannot be removed")
        if not request.where:
            raise PlanValidationError(
                f"'remove' on {path} needs 'where' selecting the items to remove"
            )
        if request.values:
            raise PlanValidationError("'remove' takes no 'values'; drop them")
    if "place-before" in (request.values or {}):
        if request.action != "add":
            raise PlanValidationError(f"place-before only applies to 'add', not {request.action!r}; "
                                      "drop it")
        check_place_before(request.values["place-before"])
    for key in (request.values or {}):
        if key.startswith(".") or not key:
            raise PlanValidationError(f"property {key!r} cannot be written; drop it from 'values'")
    check_values(path, request.values or {})


def check_values(path: str, values: dict[str, str]) -> None:
    """Validate the property values tikflow can check without the device."""
    if path == "/ip/address" and "address" in values:
        _check_interface_address(values["address"], ip_version=4)
    if path == "/ipv6/address" and "address" in values:
        _check_interface_address(values["address"], ip_version=6)
    if path in ("/ip/firewall/filter", "/ip/firewall/nat", "/ip/firewall/mangle", "/ip/firewall/raw"):
        for key in ("dst-port", "src-port", "to-ports"):
            if key in values:
                _check_ports(key, values[key])
        for key in _ADDRESS_KEYS & values.keys():
            _check_address_match(key, values[key])
    if path == "/ip/route":
        if "dst-address" in values:
            _check_network(values["dst-address"])
    if path == "/ip/dns" and "servers" in values:
        for server in filter(None, values["servers"].split(",")):
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise PlanValidationError(
                    f"DNS server {server!r} is not an IP address; list addresses separated by commas"
                ) from None


def _check_interface_address(value: str, *, ip_version: int) -> None:
    try:
        address = ipaddress.ip_interface(value)
    except ValueError:
        raise PlanValidationError(
            f"address {value!r} is not a valid IPv{ip_version} address with prefix; write it like "
            + ("192.0.2.1/24" if ip_version == 4 else "2001:db8::1/64")
        ) from None
    if address.version != ip_version:
        raise PlanValidationError(f"address {value!r} is not IPv{ip_version}")
    if "/" not in value:
        raise PlanValidationError(
            f"address {value!r} has no prefix length; add one, e.g. {value}/24"
        )


def _check_network(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise PlanValidationError(f"dst-address {value!r} is not a network: {exc}") from None


def _check_ports(key: str, value: str) -> None:
    for part in value.lstrip("!").split(","):
        if not _PORT_RE.match(part):
            raise PlanValidationError(
                f"{key} {value!r} is not a port list; use numbers 1-65535, ranges like 8000-8080, "
                "separated by commas"
            )
        bounds = [int(p) for p in part.split("-")]
        if not all(1 <= p <= 65535 for p in bounds) or bounds != sorted(bounds):
            raise PlanValidationError(f"{key} {value!r} has a port outside 1-65535 or a reversed range")


def _check_address_match(key: str, value: str) -> None:
    candidate = value.lstrip("!")
    parts = candidate.split("-")
    try:
        if len(parts) == 2:
            ipaddress.ip_address(parts[0])
            ipaddress.ip_address(parts[1])
        else:
            ipaddress.ip_network(candidate, strict=False)
    except ValueError:
        raise PlanValidationError(
            f"{key} {value!r} is not an address, network or range; write 192.0.2.0/24, "
            "192.0.2.5 or 192.0.2.5-192.0.2.9"
        ) from None


def check_place_before(value: str | int | None) -> str | None:
    """Check a placement: the ``.id`` of an existing rule, never a numeric position.

    Positions shift whenever any rule is added or removed, so a rule placed by position could
    land somewhere else by the time the plan is applied. A ``.id`` stays with its rule.
    """
    if value is None:
        return None
    text = str(value).strip()
    if isinstance(value, int) or text.lstrip("-").isdigit():
        raise PlanValidationError(
            f"place_before {value!r} is a position; positions shift as rules change, so pass the "
            ".id of the rule to insert before (like *5), as the list tools return it")
    if not _ITEM_ID.match(text):
        raise PlanValidationError(f"place_before {value!r} is not a rule .id; pass an id like *5 "
                                  "from the list tools")
    return text
