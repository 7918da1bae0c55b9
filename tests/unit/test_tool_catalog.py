"""The tool catalog: names, versions, tiers, deprecation notices and cursor paging helpers."""

from __future__ import annotations

import pytest
import structlog
from mcp.server.mcpserver.exceptions import ToolError

from api.catalog import (
    DEPRECATIONS,
    TIERS,
    Deprecation,
    ToolCatalog,
    current_major,
    registered_catalog,
)
from api.tools_paged import decode_cursor, encode_cursor, page_rows


@pytest.fixture(scope="module")
def catalog() -> ToolCatalog:
    return registered_catalog()


def test_catalog_names_every_tool_with_version_and_tier(catalog: ToolCatalog):
    """Every registered tool has a .vN name, a known tier and a description."""
    entries = catalog.entries()
    assert len(entries) >= 8
    for entry in entries:
        assert entry.name == f"{entry.family}.v{entry.version}"
        assert entry.tier in TIERS
        assert entry.description.strip()
        assert entry.meta["tikflow/tier"] == entry.tier


def test_catalog_deprecated_tools_exist_until_removal_major(catalog: ToolCatalog):
    """A deprecated tool stays registered while the major version is below its removal major."""
    major = current_major()
    for name, deprecation in DEPRECATIONS.items():
        assert deprecation.removal_major > 0
        if major < deprecation.removal_major:
            entry = catalog.get(name)
            assert entry is not None, f"{name} was removed before major version {deprecation.removal_major}"
            assert entry.status == "deprecated"


def test_catalog_replacements_are_active_tools(catalog: ToolCatalog):
    """Every deprecated tool names a replacement that is registered and active."""
    for entry in catalog.entries():
        if entry.status != "deprecated":
            assert entry.replacement is None
            continue
        replacement = catalog.get(entry.replacement or "")
        assert replacement is not None, entry.name
        assert replacement.status == "active"
        assert replacement.family == entry.family
        assert replacement.version > entry.version


def test_catalog_marks_address_list_v1_deprecated(catalog: ToolCatalog):
    """ip.address.list.v1 is marked deprecated in its description and meta, and v2 is active."""
    old = catalog.get("ip.address.list.v1")
    new = catalog.get("ip.address.list.v2")
    assert old is not None and new is not None
    assert old.description.startswith("Deprecated: use ip.address.list.v2")
    assert old.meta["tikflow/status"] == "deprecated"
    assert old.meta["tikflow/replacement"] == "ip.address.list.v2"
    assert new.meta["tikflow/status"] == "active"
    assert "tikflow/replacement" not in new.meta


def test_catalog_typed_plan_tools_are_plan_tier(catalog: ToolCatalog):
    """The typed planning tools are registered in the plan tier and are not read-only."""
    typed = [e for e in catalog.entries() if e.family.count(".") == 2 and e.family.startswith("plan.")]
    assert {e.name for e in typed} >= {
        "plan.ip_address.add.v1", "plan.ip_address.remove.v1", "plan.route.add.v1",
        "plan.firewall_filter.add.v1", "plan.firewall_nat.add.v1", "plan.address_list.add.v1",
        "plan.dns.set_servers.v1", "plan.interface.set_enabled.v1", "plan.system_identity.set.v1",
        "plan.bridge_vlan.add.v1",
    }
    for entry in typed:
        assert entry.tier == "plan", entry.name
        assert not entry.read_only, entry.name
        assert not entry.destructive, entry.name


@pytest.mark.parametrize(
    ("name", "tier", "message"),
    [
        ("ip.address.list", "read", "ending in .vN"),
        ("IP.address.list.v1", "read", "ending in .vN"),
        ("ip.address.list.v0", "read", "ending in .vN"),
        ("ip.address.list.v1", "write", "use one of read, plan, apply, admin"),
    ],
)
def test_catalog_rejects_bad_names_and_tiers(name: str, tier: str, message: str):
    """A malformed name or an unknown tier is rejected at registration."""
    with pytest.raises(ValueError, match=message):
        ToolCatalog().add(name, title="t", tier=tier, description="d")


def test_catalog_rejects_duplicate_names():
    """Registering the same tool name twice is an error."""
    catalog = ToolCatalog()
    catalog.add("a.b.v1", title="t", tier="read", description="d")
    with pytest.raises(ValueError, match="registered twice"):
        catalog.add("a.b.v1", title="t", tier="read", description="d")


def test_catalog_deprecated_call_logs_warning():
    """Calling a deprecated tool logs one warning naming the replacement."""
    catalog = ToolCatalog({"a.b.v1": Deprecation(replacement="a.b.v2", removal_major=9)})
    old = catalog.add("a.b.v1", title="t", tier="read", description="d")
    new = catalog.add("a.b.v2", title="t", tier="read", description="d")
    with structlog.testing.capture_logs() as logs:
        old.warn_if_deprecated()
        new.warn_if_deprecated()
    assert logs == [{"event": "deprecated tool called", "tool": "a.b.v1", "replacement": "a.b.v2",
                     "log_level": "warning"}]


def test_paging_returns_every_row_once_in_id_order():
    """Walking pages by cursor position returns each row once, ordered by id number."""
    rows = [{".id": f"*{n:X}", "address": f"10.0.{n}.1/24"} for n in (3, 1, 0x1F, 2, 0x10, 0xA)]
    seen: list[str] = []
    after = -2
    while True:
        page, more = page_rows(rows, after=after, page_size=4)
        seen.extend(row[".id"] for row in page)
        if not more:
            break
        after = int(page[-1][".id"][1:], 16)
    assert seen == ["*1", "*2", "*3", "*A", "*10", "*1F"]


def test_cursor_roundtrip_and_mismatch():
    """A cursor resumes after its id and is refused for another device or filter."""
    cursor = encode_cursor("dev-1", {"interface": "ether1"}, "*1F")
    assert decode_cursor(cursor, "dev-1", {"interface": "ether1"}) == 0x1F
    with pytest.raises(ToolError, match="another device or filter"):
        decode_cursor(cursor, "dev-2", {"interface": "ether1"})
    with pytest.raises(ToolError, match="another device or filter"):
        decode_cursor(cursor, "dev-1", {})
    with pytest.raises(ToolError, match="not one this tool returned"):
        decode_cursor("not-a-cursor!", "dev-1", {})
