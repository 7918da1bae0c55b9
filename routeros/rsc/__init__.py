"""Parse and render RouterOS configuration exports (.rsc files)."""

from routeros.rsc.model import ExportHeader, ParsedExport, RscCommand, RscSyntaxError
from routeros.rsc.parser import parse_export
from routeros.rsc.render import render_export, sections_from_commands

__all__ = [
    "ExportHeader",
    "ParsedExport",
    "RscCommand",
    "RscSyntaxError",
    "parse_export",
    "render_export",
    "sections_from_commands",
]
