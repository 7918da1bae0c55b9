"""``tikflow tools``: the catalog as JSON and as a table, with access from the matrix."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tikflow.cli import app


def test_tools_json_lists_catalog_with_access(tmp_path, monkeypatch):
    """--json lists every tool with tier, version, status and the roles allowed per environment."""
    monkeypatch.setenv("TIKFLOW_VAR_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["tools", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    old = rows["ip.address.list.v1"]
    assert old["status"] == "deprecated"
    assert old["replacement"] == "ip.address.list.v2"
    assert rows["ip.address.list.v2"]["status"] == "active"
    typed = rows["plan.bridge_vlan.add.v1"]
    assert typed["tier"] == "plan"
    assert typed["version"] == 1
    assert "reader" not in typed["access"]
    assert typed["access"]["operator"] == ["lab", "staging", "prod"]
    assert rows["plan.apply.v1"]["access"]["approver"] == ["lab", "staging", "prod"]


def test_tools_table_shows_status_and_tier(tmp_path, monkeypatch):
    """The table names each tool with its tier and marks the deprecated one with its replacement."""
    monkeypatch.setenv("TIKFLOW_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["tools"])
    assert result.exit_code == 0, result.output
    assert "plan.firewall_filter.add.v1" in result.stdout
    assert "deprecated -> ip.address.list.v2" in result.stdout
    assert "operator: lab,staging,prod" in result.stdout
