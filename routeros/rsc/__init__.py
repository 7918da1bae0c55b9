"""Parse and render RouterOS configuration exports (.rsc files).

``parse_export`` reads compact, terse and verbose exports into ``RscCommand`` objects
with API paths and decoded values. ``render_export`` writes commands back in compact or
terse style, and ``sections_from_commands`` groups parsed commands for it::

    parsed = parse_export(path.read_bytes())
    text = render_export(sections_from_commands(parsed.commands), header=parsed.header)
    # parse_export(text) returns the same commands, apart from their line numbers.

Values that held bytes which are not UTF-8 decode them with ``surrogateescape``.
"""

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
