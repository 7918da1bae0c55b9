"""``tikflow tools``: list the MCP tool catalog with tiers, versions, status and who may call each.

The access column comes from the role x tier x environment matrix of ``api.authz`` with the
overrides of the current configuration (``auth.matrix``). Nothing is contacted: the catalog
is built by registering the tools in this process.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)


def tool_rows(entries: list[Any], matrix: Any) -> list[dict[str, Any]]:
    """Return one JSON-ready row per catalog entry, with the roles and environments allowed."""
    rows = []
    for entry in entries:
        access = {role: _in_display_order(matrix.environments([role], entry.tier))
                  for role in _roles(matrix)}
        rows.append({
            "name": entry.name,
            "version": entry.version,
            "tier": entry.tier,
            "status": entry.status,
            "replacement": entry.replacement,
            "read_only": entry.read_only,
            "destructive": entry.destructive,
            "access": {role: envs for role, envs in access.items() if envs},
            "description": entry.description,
        })
    return rows


def _roles(matrix: Any) -> list[str]:
    from api.authz import ROLES

    return [role for role in ROLES if role in matrix.cells]


def _in_display_order(environments: frozenset[str]) -> list[str]:
    from api.authz import ENVIRONMENTS

    return sorted(environments, key=lambda env: (ENVIRONMENTS.index(env) if env in ENVIRONMENTS
                                                 else len(ENVIRONMENTS), env))


def _load_matrix() -> tuple[Any, str | None]:
    """Return the configured access matrix, or the defaults with a note when settings fail."""
    from api.authz import AccessMatrix
    from tikflow.settings import AuthSettings, Settings

    try:
        return AccessMatrix.from_settings(Settings().auth), None
    except ValidationError as exc:
        note = (f"configuration is invalid ({exc.error_count()} error(s), see `tikflow config "
                "check`); showing the default access matrix")
        return AccessMatrix.from_settings(AuthSettings()), note


def _render(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="tikflow MCP tools")
    table.add_column("tool", overflow="fold")
    for column in ("version", "tier", "status", "roles: environments"):
        table.add_column(column, overflow="fold")
    for row in rows:
        status = row["status"]
        if row["replacement"]:
            status = f"{status} -> {row['replacement']}"
        access = "\n".join(f"{role}: {','.join(envs)}" for role, envs in row["access"].items())
        table.add_row(row["name"], f"v{row['version']}", row["tier"], status, access or "nobody")
    return table


def tools(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List every MCP tool with its risk tier, version, status and who may call it where."""
    from api.catalog import registered_catalog

    matrix, note = _load_matrix()
    rows = tool_rows(registered_catalog().entries(), matrix)
    if note:
        err.print(f"[yellow]note:[/yellow] {note}", highlight=False)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    out.print(_render(rows))


def register(app: typer.Typer) -> None:
    """Add the ``tools`` command to ``app``."""
    app.command("tools")(tools)
