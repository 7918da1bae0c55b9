"""Render commands as a RouterOS export, in compact or terse style."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from routeros.rsc.model import ExportHeader, RscCommand
from routeros.rsc.parser import CREATING_VERBS, MENU_WORD, PROPERTY_NAME, VERB_WORD

# Compact exports keep every physical line, trailing backslash included, within 79
# characters, as in a RouterOS 6.48.1 export that this renderer reproduces exactly.
MAX_LINE = 79
INDENT = "    "
# Room kept after a property that is not split so that " \\" can still follow it.
FIT_RESERVE = 2
# Characters RouterOS leaves unquoted in exported values. Everything else (space, quote,
# backslash, "$ [ ] { } ( ) = ' ; ? `", controls, non-ASCII) forces quotes.
# NOTE: '%' and '+' are assumed safe; the sample exports never write them unquoted.
UNQUOTED_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#%*+,-./:<>@_"
)
# Escapes for bytes inside quotes; other control and non-ASCII bytes become "\HH".
QUOTED_ESCAPES = {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("$"): "\\$",
    ord("?"): "\\?",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}
STYLES = ("compact", "terse")
LINE_ENDINGS = ("\n", "\r\n")
VERSION_NUMBER = re.compile(r"^(\d+)\.(\d+)")
# RouterOS 7.10rc1 switched the header date from "jun/07/2023 23:47:16" to ISO form.
ISO_DATE_SINCE = (7, 10)


def render_export(
    sections: list[tuple[str, list[RscCommand]]],
    *,
    style: str = "compact",
    header: ExportHeader | None = None,
    version: str = "7.19",
    line_ending: str = "\n",
) -> str:
    """Render ``sections`` as the text RouterOS ``/export`` would write.

    Each section is an API path (``/ip/firewall/filter``) and the commands written under
    it. A command's own ``path`` is not consulted. ``style`` is ``"compact"`` (menu
    header lines, wrapped at 79 columns) or ``"terse"`` (the menu path on every line).
    A header without a version uses ``version``, and one without a date uses the
    current UTC time. ``line_ending`` is ``"\\n"`` or ``"\\r\\n"``. Raises ValueError
    for an unknown style or line ending, an invalid path, verb, property name or header
    field, or a value that cannot be encoded.
    """
    if style not in STYLES:
        raise ValueError(f"unknown export style {style!r}; use 'compact' or 'terse'")
    if line_ending not in LINE_ENDINGS:
        raise ValueError(f"invalid line ending {line_ending!r}; use '\\n' or '\\r\\n'")
    lines = render_header(header or ExportHeader(), version)
    for path, commands in sections:
        menu = menu_words(path)
        if style == "compact":
            lines.append(menu)
            lines.extend(render_compact_command(command) for command in commands)
        else:
            lines.extend(render_terse_command(menu, command) for command in commands)
    text = "\n".join(lines) + "\n"
    return text.replace("\n", line_ending) if line_ending != "\n" else text


def sections_from_commands(commands: Iterable[RscCommand]) -> list[tuple[str, list[RscCommand]]]:
    """Group consecutive commands that share a path, keeping their order."""
    sections: list[tuple[str, list[RscCommand]]] = []
    for command in commands:
        if sections and sections[-1][0] == command.path:
            sections[-1][1].append(command)
        else:
            sections.append((command.path, [command]))
    return sections


def render_header(header: ExportHeader, version: str) -> list[str]:
    """Render the comment block above the first command."""
    fields = {**vars(header), "version argument": version}
    for name, value in fields.items():
        if value is not None and ("\n" in value or "\r" in value):
            raise ValueError(f"header field {name} contains a line break; remove it: {value!r}")
    version = header.version or version
    date = header.date or format_export_date(datetime.now(UTC), version)
    lines = [f"# {date} by RouterOS {version}"]
    if header.software_id is not None:
        lines.append(f"# software id = {header.software_id}")
    if header.model is not None or header.serial is not None:
        lines.append("#")
        lines.append(f"# model = {header.model or ''}")
        lines.append(f"# serial number = {header.serial or ''}")
    elif header.software_id is not None and version_tuple(version) < (7, 0):
        # RouterOS 6 on CHR prints empty comment lines in place of model and serial.
        lines.extend(["#", "#", "#"])
    if header.system_id is not None:
        lines.append(f"# system id = {header.system_id}")
    return lines


def format_export_date(moment: datetime, version: str) -> str:
    """Format ``moment`` the way the given RouterOS version writes export dates."""
    if version_tuple(version) >= ISO_DATE_SINCE:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%b/%d/%Y %H:%M:%S").lower()


def version_tuple(version: str) -> tuple[int, int]:
    """Return (major, minor) of a RouterOS version such as ``7.19rc2``."""
    match = VERSION_NUMBER.match(version)
    if match is None:
        raise ValueError(f"invalid RouterOS version {version!r}; expected a form like '7.19'")
    return int(match[1]), int(match[2])


def menu_words(path: str) -> str:
    """Convert ``/ip/firewall/filter`` to the CLI form ``/ip firewall filter``."""
    words = [word for word in path.split("/") if word]
    if not path.startswith("/") or any(not MENU_WORD.match(word) for word in words):
        raise ValueError(f"invalid menu path {path!r}; expected a form like '/ip/firewall/filter'")
    return "/" + " ".join(words)


# --- values ---------------------------------------------------------------------------


def needs_quotes(value: str) -> bool:
    """Tell whether RouterOS would quote ``value`` in an export."""
    return value == "" or any(char not in UNQUOTED_CHARS for char in value)


def quoted_atoms(value: str) -> list[str]:
    """Return the pieces of a quoted value; a line break never falls inside one piece."""
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"value {value!r} contains a character that is not valid UTF-8; "
            "pass raw bytes decoded with 'surrogateescape'"
        ) from error
    atoms = ['"']
    for byte in data:
        if byte in QUOTED_ESCAPES:
            atoms.append(QUOTED_ESCAPES[byte])
        elif byte < 0x20 or byte >= 0x7F:
            atoms.append(f"\\{byte:02X}")
        else:
            atoms.append(chr(byte))
    atoms.append('"')
    return atoms


def property_units(command: RscCommand, *, wrap: bool) -> list[Unit]:
    """Split a command's properties into units for line wrapping.

    With ``wrap``, a value too long for a line of its own is quoted so that it can be
    split, as the compact exporter does. Keys that share the previous key's dotted prefix are written in RouterOS's
    shorthand (``.network`` after ``output.filter-chain``).
    """
    units: list[Unit] = []
    previous_prefix: str | None = None
    for key, value in command.properties:
        check_property_name(key, value)
        if value is None:
            units.append(Unit(key))
            previous_prefix = None
            continue
        prefix, dot, last = key.rpartition(".")
        written = f".{last}" if dot and prefix == previous_prefix else key
        previous_prefix = prefix or None
        too_long = wrap and len(INDENT) + len(value) > MAX_LINE - FIT_RESERVE
        if needs_quotes(value) or too_long:
            units.append(Unit(f"{written}=", atoms=quoted_atoms(value)))
        else:
            units.append(Unit(f"{written}=", atoms=[value]))
    return units


def check_property_name(key: str, value: str | None) -> None:
    """Raise ValueError when ``key`` cannot be written as a property name."""
    name = key[1:] if key.startswith("!") and value is None else key
    if not PROPERTY_NAME.match(name):
        raise ValueError(
            f"invalid property name {key!r}; use letters, digits, '-' and '.', "
            "with '!' only before a name that has no value"
        )


def render_selector(command: RscCommand) -> str | None:
    """Return the item selector as written, building ``[ find ... ]`` from a filter.

    A selector that is neither a ``[ ... ]`` expression nor already quoted is quoted
    when it needs it, so that an item name with a space stays one token.
    """
    selector = command.selector
    if selector is not None:
        if selector.startswith(("[", '"')) or not needs_quotes(selector):
            return selector
        return "".join(quoted_atoms(selector))
    if command.selector_filter is None:
        return None
    terms = []
    for key, value in command.selector_filter.items():
        check_property_name(key, value)
        rendered = "".join(quoted_atoms(value)) if needs_quotes(value) else value
        terms.append(f"{key}={rendered}")
    return "[ find " + " ".join(terms) + " ]" if terms else "[ find ]"


def command_start(command: RscCommand) -> str:
    """Return the verb and selector that open a command line.

    Raises ValueError for a line that would read back differently: a selector on
    ``add``, or a bare flag right after another verb, where it would select an item.
    """
    if not VERB_WORD.match(command.verb):
        raise ValueError(f"invalid command verb {command.verb!r}; expected a word like 'add'")
    selector = render_selector(command)
    if selector is None:
        first = command.properties[0] if command.properties else None
        if command.verb not in CREATING_VERBS and first and first[1] is None:
            if not first[0].startswith("!"):
                raise ValueError(
                    f"flag {first[0]!r} right after {command.verb!r} would read as an item "
                    "selector; add a selector such as '[ find ]' or move the flag later"
                )
        return command.verb
    if command.verb in CREATING_VERBS:
        raise ValueError(f"{command.verb!r} takes no item selector; remove {selector!r}")
    return f"{command.verb} {selector}"


# --- layout ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One property as written: ``name`` is ``key=`` or a bare flag word.

    ``atoms`` contains the value's pieces: the whole text of an unquoted value, or for a
    quoted value the quotes, characters and escapes, none of which may be split.
    """

    name: str
    atoms: list[str] | None = None

    @property
    def value_length(self) -> int:
        """The number of characters the value takes on one line."""
        return sum(len(atom) for atom in self.atoms) if self.atoms else 0


class WrappedLine:
    """Builds one command across physical lines of at most ``MAX_LINE`` characters."""

    def __init__(self, start: str, *, wrap: bool) -> None:
        self.lines: list[str] = []
        self.current = start
        self.fresh = False
        self.wrap = wrap

    def fits(self, length: int, *, reserve: int) -> bool:
        """Tell whether ``length`` more characters and ``reserve`` after them fit."""
        return not self.wrap or len(self.current) + length + reserve <= MAX_LINE

    def break_line(self, separator: str = "") -> None:
        """End the physical line with ``separator`` and a backslash and start a new one."""
        self.lines.append(self.current + separator + "\\")
        self.current = INDENT
        self.fresh = True

    def append(self, text: str) -> None:
        """Append text to the current physical line."""
        self.current += text
        self.fresh = False

    def add_unit(self, unit: Unit) -> None:
        """Append one property, wrapping it the way the RouterOS exporter does.

        A property that does not fit moves whole to the next line when even ``key=\\``
        does not fit. Otherwise the line breaks after ``=`` if the value then fits on a
        line of its own, and a longer quoted value is split where the line ends.
        """
        separator = "" if self.fresh else " "
        if self.fits(len(separator) + len(unit.name) + unit.value_length, reserve=FIT_RESERVE):
            self.append(separator + unit.name)
            self.write_atoms(unit.atoms)
            return
        if separator and not self.fits(len(separator) + len(unit.name), reserve=FIT_RESERVE):
            self.break_line(" ")
            separator = ""
        self.append(separator + unit.name)
        if unit.atoms is None:
            return
        if len(INDENT) + unit.value_length <= MAX_LINE - FIT_RESERVE and not self.fits(
            unit.value_length, reserve=FIT_RESERVE
        ):
            self.break_line()
        self.write_atoms(unit.atoms)

    def write_atoms(self, atoms: list[str] | None) -> None:
        """Write a value, breaking before each newline escape and where a line overflows."""
        for atom in atoms or []:
            if atom == "\\n" and not self.fresh:
                self.break_line()
            elif not self.fits(len(atom), reserve=1):
                self.break_line()
            if self.fresh and atom.startswith(" "):
                atom = "\\_" + atom[1:]
            self.append(atom)

    def finish(self) -> str:
        """Return the command's physical lines joined with newlines."""
        return "\n".join([*self.lines, self.current])


def render_compact_command(command: RscCommand) -> str:
    """Render a command relative to its menu header, wrapped at ``MAX_LINE``."""
    builder = WrappedLine(command_start(command), wrap=True)
    for unit in property_units(command, wrap=True):
        builder.add_unit(unit)
    return builder.finish()


def render_terse_command(menu: str, command: RscCommand) -> str:
    """Render a command on one line with its menu path; only newlines in values wrap."""
    builder = WrappedLine(f"{menu} {command_start(command)}", wrap=False)
    for unit in property_units(command, wrap=False):
        builder.add_unit(unit)
    return builder.finish()
