"""Parse and render RouterOS configuration exports (.rsc files)."""

from routeros.rsc.model import ExportHeader, ParsedExport, RscCommand, RscSyntaxError
from routeros.rsc.parser import parse_export

__all__ = [
    "ExportHeader",
    "ParsedExport",
    "RscCommand",
    "RscSyntaxError",
    "parse_export",
]
