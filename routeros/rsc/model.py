"""Data types shared by the .rsc parser and renderer."""

from __future__ import annotations

from dataclasses import dataclass, field


class RscSyntaxError(ValueError):
    """An export text that RouterOS would not accept as a script.

    The message names the 1-based line and column of the offending character and states
    what to change, so a person can fix the file without reading the parser.
    """

    def __init__(self, message: str, *, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.line = line
        self.column = column
        self.reason = message


@dataclass(frozen=True)
class ExportHeader:
    """The comment block RouterOS writes above an export's first command.

    Each field is None when its line is missing. ``software_id`` is an empty string when
    the line is present but empty, as on CHR exports of RouterOS 6.
    """

    date: str | None = None
    version: str | None = None
    software_id: str | None = None
    system_id: str | None = None
    model: str | None = None
    serial: str | None = None


@dataclass(frozen=True)
class RscCommand:
    """One command of an export, with escapes decoded and continuations joined.

    ``path`` is in API form (``/ip/firewall/filter``). ``selector`` is the item selector as
    written (``0``, ``*FFFFFFFE``, ``telnet``, ``[ find default-name=ether1 ]``) and
    ``selector_filter`` contains the decoded ``key=value`` terms of a ``[ find ... ]`` selector.
    ``properties`` keeps the written order. A value of None marks a bare flag such as
    ``fib`` or an unset property such as ``!keepalive``. Dotted shorthand keys
    (``.network``) are expanded to their full name (``output.network``). Values that held
    bytes which are not UTF-8 decode them with ``surrogateescape``, so
    ``value.encode("utf-8", "surrogateescape")`` returns the original bytes.
    """

    path: str
    verb: str
    selector: str | None = None
    selector_filter: dict[str, str] | None = None
    properties: list[tuple[str, str | None]] = field(default_factory=list)
    line: int = 0

    def get(self, key: str, default: str | None = None) -> str | None:
        """Return the value of the last property named ``key``, or ``default``."""
        for name, value in reversed(self.properties):
            if name == key:
                return value
        return default


@dataclass(frozen=True)
class ParsedExport:
    """A parsed export: header, commands in file order and ``#error exporting`` lines.

    ``style`` is the detected export style: ``"terse"`` when most commands carry their
    own path, ``"verbose"`` when many commands unset properties with ``!name``,
    otherwise ``"compact"``.
    """

    header: ExportHeader
    commands: list[RscCommand]
    errors: list[str]
    style: str
