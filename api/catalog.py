"""The catalog of MCP tools: name, version, risk tier and lifecycle status of every tool.

Tool names end in ``.vN``. An incompatible change ships as a new version beside the old one,
and the old one is marked deprecated here: its description then starts with "Deprecated: use
<replacement>", its MCP ``meta`` carries the status and replacement, and every call logs a
warning. A deprecated tool may only be removed in the major version named by its
``Deprecation``, and a unit test checks that promise.

``ToolRunner.tool`` fills a ``ToolCatalog`` as tools are registered, so the catalog lists
exactly what the server serves. ``registered_catalog`` runs that registration without a
server process for ``tikflow tools``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from tikflow.version import __version__

log = structlog.get_logger(__name__)

TIERS = ("read", "plan", "apply", "admin")
ToolStatus = Literal["active", "deprecated"]

_NAME = re.compile(r"^(?P<family>[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)\.v(?P<version>[1-9][0-9]*)$")


@dataclass(frozen=True)
class Deprecation:
    """Why a tool is deprecated: what replaces it, and from which major version it may go."""

    replacement: str
    removal_major: int


# Tools kept for existing callers. A tool listed here stays registered until tikflow's major
# version reaches ``removal_major``.
DEPRECATIONS: dict[str, Deprecation] = {
    "ip.address.list.v1": Deprecation(replacement="ip.address.list.v2", removal_major=1),
}


@dataclass(frozen=True)
class ToolEntry:
    """One registered tool as callers and operators see it."""

    name: str
    family: str
    version: int
    title: str
    tier: str
    status: ToolStatus
    replacement: str | None
    description: str
    read_only: bool
    destructive: bool

    @property
    def meta(self) -> dict[str, Any]:
        """MCP ``_meta`` of the tool: tier, version and lifecycle status."""
        meta: dict[str, Any] = {"tikflow/tier": self.tier, "tikflow/version": self.version,
                                "tikflow/status": self.status}
        if self.replacement:
            meta["tikflow/replacement"] = self.replacement
        return meta

    def warn_if_deprecated(self) -> None:
        """Log one warning line for a call of a deprecated tool."""
        if self.status == "deprecated":
            log.warning("deprecated tool called", tool=self.name, replacement=self.replacement)


class ToolCatalog:
    """The tools of one server, in registration order."""

    def __init__(self, deprecations: dict[str, Deprecation] | None = None) -> None:
        self._deprecations = DEPRECATIONS if deprecations is None else deprecations
        self._entries: dict[str, ToolEntry] = {}

    def add(self, name: str, *, title: str, tier: str, description: str,
            read_only: bool = False, destructive: bool = False) -> ToolEntry:
        """Record a tool and return its entry, with the deprecation notice applied.

        Raises:
            ValueError: the name is not ``family.vN``, the tier is unknown or the name is taken.
        """
        match = _NAME.match(name)
        if match is None:
            raise ValueError(f"tool name {name!r} must be dotted lowercase words ending in .vN, "
                             "e.g. ip.address.list.v1")
        if tier not in TIERS:
            raise ValueError(f"tool {name} has tier {tier!r}; use one of {', '.join(TIERS)}")
        if name in self._entries:
            raise ValueError(f"tool {name} is registered twice")
        deprecation = self._deprecations.get(name)
        if deprecation is not None:
            description = f"Deprecated: use {deprecation.replacement} instead. {description}"
        entry = ToolEntry(
            name=name,
            family=match["family"],
            version=int(match["version"]),
            title=title,
            tier=tier,
            status="deprecated" if deprecation else "active",
            replacement=deprecation.replacement if deprecation else None,
            description=description,
            read_only=read_only,
            destructive=destructive,
        )
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> ToolEntry | None:
        """Return the entry of ``name``, or None when no such tool is registered."""
        return self._entries.get(name)

    def entries(self) -> list[ToolEntry]:
        """Return every entry, sorted by family and then version."""
        return sorted(self._entries.values(), key=lambda e: (e.family, e.version))


def current_major() -> int:
    """Return the major version of this tikflow build."""
    return int(__version__.split(".", 1)[0])


class _NoServices:
    """Stands in for ``Services`` when tools are registered only to read the catalog."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"services.{name} was used while registering tools; registration "
                           "must not touch services, only the tool calls may")


def registered_catalog() -> ToolCatalog:
    """Register every tool on a throwaway server and return the resulting catalog.

    No database, device or Temporal connection is opened.
    """
    # Imported here because api.mcp_tools imports this module.
    from mcp.server.mcpserver import MCPServer

    from api.mcp_tools import ToolRunner, register_tools

    server = MCPServer(name="tikflow-catalog")
    runner: ToolRunner = register_tools(server, _NoServices())  # type: ignore[arg-type]
    return runner.catalog
