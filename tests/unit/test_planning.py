"""Planning without devices: validation messages, selection, diff, risk and hashing."""

from __future__ import annotations

import pytest

from planning.model import ChangeRequest
from planning.planner import PlanDevice, build_plan
from planning.state import fingerprint, same_content
from planning.validation import PlanValidationError, normalise_path

DEVICE = PlanDevice(id="dev-1", name="r1", environment="lab", address="192.0.2.1")
TABLES = {
    "/interface": [{".id": "*1", "name": "ether1"}, {".id": "*2", "name": "bridge"}],
    "/ip/address": [{".id": "*1", "address": "192.0.2.1/24", "interface": "ether1",
                     "disabled": "false"}],
    "/ip/firewall/filter": [{".id": "*2", "chain": "input", "action": "accept",
                             "protocol": "tcp", "dst-port": "8728"}],
}


async def lookup(ref: str) -> PlanDevice:
    if ref not in ("r1", "dev-1"):
        raise PlanValidationError(f"no device {ref}")
    return DEVICE


async def read(device: PlanDevice, path: str) -> list[dict[str, str]]:
    return [dict(row) for row in TABLES.get(path, [])]


async def plan(*changes: dict, description: str = "test"):
    requests = [ChangeRequest(**c) for c in changes]
    return await build_plan(description, requests, lookup_device=lookup, read_table=read)


async def test_plan_add_address_has_diff_and_low_risk():
    """Adding an address away from the management path is low risk and shows the new item."""
    result = await plan({"device": "r1", "path": "/ip/address", "action": "add",
                         "values": {"address": "10.9.0.1/24", "interface": "bridge"}})
    assert result.risk.level == "low"
    assert result.diff[0].entries[0].after == {"address": "10.9.0.1/24", "interface": "bridge"}
    assert "+ address=10.9.0.1/24" in result.diff[0].text
    assert set(result.fingerprints["dev-1"]) == {"/ip/address", "/interface"}


async def test_plan_hash_changes_with_content():
    """Two plans with different values hash differently; the same plan hashes the same."""
    first = await plan({"device": "r1", "path": "/ip/address", "action": "add",
                        "values": {"address": "10.9.0.1/24", "interface": "bridge"}})
    again = await plan({"device": "r1", "path": "/ip/address", "action": "add",
                        "values": {"address": "10.9.0.1/24", "interface": "bridge"}})
    other = await plan({"device": "r1", "path": "/ip/address", "action": "add",
                        "values": {"address": "10.9.0.2/24", "interface": "bridge"}})
    assert first.content_hash() == again.content_hash()
    assert first.content_hash() != other.content_hash()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "/ip/address", "action": "add", "values": {"address": "10.0.0.300/24",
                                                            "interface": "bridge"}},
         "not a valid IPv4 address"),
        ({"path": "/ip/address", "action": "add", "values": {"address": "10.0.0.1",
                                                            "interface": "bridge"}},
         "no prefix length"),
        ({"path": "/ip/address", "action": "add", "values": {"address": "10.0.0.1/24",
                                                            "interface": "wlan9"}},
         "interface 'wlan9' does not exist on r1; use one of: bridge, ether1"),
        ({"path": "/ip/address", "action": "set", "values": {"comment": "x"}},
         "needs 'where'"),
        ({"path": "/ip/address", "action": "remove", "where": {"address": "10.1.1.1/24"}},
         "no item in /ip/address on r1 matches"),
        ({"path": "/ip/firewall/filter", "action": "add",
          "values": {"chain": "forward", "dst-port": "70000"}}, "outside 1-65535"),
        ({"path": "ip address!", "action": "add", "values": {"a": "b"}}, "not a RouterOS menu path"),
        ({"path": "/ip/dns", "action": "add", "values": {"servers": "192.0.2.53"}},
         "use action 'set'"),
        ({"path": "/ip/dns", "action": "set", "values": {"servers": "dns.example"}},
         "is not an IP address"),
    ],
)
async def test_plan_rejects_bad_input_with_fix(change, message):
    """Each malformed change is refused with a message naming the fix."""
    with pytest.raises(PlanValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        await plan({"device": "r1", **change})


async def test_plan_input_rule_change_is_high_risk():
    """Removing a firewall input rule is high risk with the reason stated."""
    result = await plan({"device": "r1", "path": "/ip/firewall/filter", "action": "remove",
                         "where": {".id": "*2"}})
    assert result.risk.level == "high"
    assert any("input rule" in reason for reason in result.risk.reasons)


async def test_plan_rule_without_match_conditions_is_flagged():
    """A filter rule with no match conditions is high risk."""
    result = await plan({"device": "r1", "path": "/ip/firewall/filter", "action": "add",
                         "values": {"chain": "forward", "action": "drop"}})
    assert result.risk.level == "high"
    assert any("no match conditions" in reason for reason in result.risk.reasons)


async def test_plan_rejects_two_changes_on_one_item():
    """Two changes selecting the same item are refused: the second would act on stale state."""
    with pytest.raises(PlanValidationError, match="merge them"):
        await plan(
            {"device": "r1", "path": "/ip/address", "action": "set", "where": {".id": "*1"},
             "values": {"comment": "a"}},
            {"device": "r1", "path": "/ip/address", "action": "remove", "where": {".id": "*1"}},
        )


async def test_plan_set_matches_yes_no_against_true_false():
    """`where` written with yes/no selects items the device reports as true/false."""
    result = await plan({"device": "r1", "path": "/ip/address", "action": "set",
                         "where": {"disabled": "no"}, "values": {"disabled": True}})
    entry = result.diff[0].entries[0]
    assert entry.before["disabled"] == "false"
    assert entry.after["disabled"] == "true"


def test_normalise_path_accepts_cli_form():
    """CLI spelling with spaces becomes the API path."""
    assert normalise_path("/ip firewall filter") == "/ip/firewall/filter"
    assert normalise_path("ip/address/") == "/ip/address"


def test_fingerprint_ignores_counters_but_not_order():
    """Packet counters do not change a fingerprint; reordering rules does."""
    rows = [{".id": "*1", "chain": "input", "bytes": "10"}, {".id": "*2", "chain": "forward"}]
    counted = [{".id": "*1", "chain": "input", "bytes": "99"}, {".id": "*2", "chain": "forward"}]
    assert fingerprint(rows) == fingerprint(counted)
    assert fingerprint(rows) != fingerprint(list(reversed(rows)))


def test_same_content_ignores_ids_only():
    """A re-added item with a new id still equals the snapshot; a changed value does not."""
    before = [{".id": "*1", "address": "192.0.2.1/24", "network": "192.0.2.0"}]
    readded = [{".id": "*9", "address": "192.0.2.1/24", "network": "192.0.2.0"}]
    changed = [{".id": "*1", "address": "192.0.2.2/24", "network": "192.0.2.0"}]
    assert same_content(before, readded)
    assert not same_content(before, changed)


async def test_plan_rejects_unknown_action_with_choices():
    """A wrong action names the three choices instead of a generic validation error."""
    with pytest.raises(PlanValidationError, match="action 'ad' is not one of add, set, remove"):
        await plan({"device": "r1", "path": "/ip/address", "action": "ad",
                    "values": {"address": "10.9.0.1/24", "interface": "bridge"}})


async def test_plan_rejects_address_the_device_has():
    """Adding an address the device already has is refused with the existing item named."""
    with pytest.raises(PlanValidationError, match=r"r1 already has address 192.0.2.1/24 on ether1 \(\*1\)"):
        await plan({"device": "r1", "path": "/ip/address", "action": "add",
                    "values": {"address": "192.0.2.1/24", "interface": "ether1"}})


async def test_plan_warns_about_likely_misspelled_property():
    """A property close to one the menu's items have is flagged, and the plan is still made."""
    result = await plan({"device": "r1", "path": "/ip/address", "action": "add",
                         "values": {"adress": "10.9.0.1/24", "interface": "bridge", "comment": "x"}})
    assert result.warnings == [
        "change 1: no item of /ip/address on r1 has property 'adress'; did you mean 'address'?"]
