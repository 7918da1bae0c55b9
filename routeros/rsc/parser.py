"""Parse RouterOS exports (compact, terse and verbose) into commands."""

from __future__ import annotations

import re

from routeros.rsc.lexer import LogicalLine, Token, iter_logical_lines, tokenize
from routeros.rsc.model import ExportHeader, ParsedExport, RscCommand

# Command words that end a menu path on a terse line ("/ip address add ...").
VERBS = frozenset(
    {
        "add",
        "set",
        "remove",
        "disable",
        "enable",
        "unset",
        "reset",
        "move",
        "comment",
        "edit",
        "print",
        "export",
        "import",
    }
)
# Verbs that create an item and therefore take no item selector.
CREATING_VERBS = frozenset({"add"})

HEADER_VERSION = re.compile(r"^# (?P<date>.*?) by RouterOS (?P<version>\S+)")
HEADER_FIELDS = {
    "software_id": re.compile(r"^# software id =(?P<value>.*)$"),
    "system_id": re.compile(r"^# system id =(?P<value>.*)$"),
    "model": re.compile(r"^# model =(?P<value>.*)$"),
    "serial": re.compile(r"^# serial number =(?P<value>.*)$"),
}
MENU_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VERB_WORD = re.compile(r"^[a-z][a-z0-9-]*$")
PROPERTY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ERROR_PREFIX = "#error exporting"


def parse_export(data: bytes | str) -> ParsedExport:
    """Parse the text of an ``/export`` into its header, commands and error lines.

    ``data`` may be bytes in any encoding: bytes that are not UTF-8 survive through
    ``surrogateescape``. Raises RscSyntaxError, naming line and column, for an
    unterminated quote or bracket, a continuation backslash on the last line, an invalid
    escape, or a command that appears before any menu path.
    """
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    header_lines: list[str] = []
    commands: list[RscCommand] = []
    errors: list[str] = []
    current_path: str | None = None
    inline_commands = 0
    for line in iter_logical_lines(text):
        stripped = line.text.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if stripped.startswith(ERROR_PREFIX):
                errors.append(stripped)
            elif not commands and current_path is None:
                header_lines.append(stripped)
            continue
        path, command = parse_line(line, current_path)
        current_path = path
        if command is not None:
            commands.append(command)
            inline_commands += stripped.startswith("/")
    return ParsedExport(
        header=parse_header(header_lines),
        commands=commands,
        errors=errors,
        style=detect_style(commands, inline_commands),
    )


def parse_header(lines: list[str]) -> ExportHeader:
    """Read the date, version, ids, model and serial from the leading comment lines."""
    found: dict[str, str] = {}
    for line in lines:
        match = HEADER_VERSION.match(line)
        if match and "date" not in found:
            found["date"] = match["date"].strip()
            found["version"] = match["version"]
            continue
        for name, pattern in HEADER_FIELDS.items():
            field_match = pattern.match(line)
            if field_match and name not in found:
                found[name] = field_match["value"].strip()
    return ExportHeader(**found)


def parse_line(line: LogicalLine, current_path: str | None) -> tuple[str | None, RscCommand | None]:
    """Parse one logical line; return the menu path in force after it and its command."""
    tokens = tokenize(line)
    first = tokens[0]
    if first.raw.startswith("/"):
        path, rest = split_path(line, tokens)
        if not rest:
            return path, None
        return path, build_command(line, path, rest)
    if current_path is None:
        raise line.error(
            first.offset,
            f"command '{first.raw}' has no menu path; put a path line such as "
            "'/ip address' before it or write the path on the same line",
        )
    return current_path, build_command(line, current_path, tokens)


def split_path(line: LogicalLine, tokens: list[Token]) -> tuple[str, list[Token]]:
    """Split ``/ip firewall filter add ...`` into the API path and the tokens from the verb on."""
    words = [word for word in tokens[0].raw.split("/") if word]
    index = 1
    while index < len(tokens) and is_menu_word(tokens[index]):
        words.append(tokens[index].raw)
        index += 1
    for word in words:
        if not MENU_WORD.match(word):
            raise line.error(
                tokens[0].offset, f"invalid menu name '{word}' in path; use letters, digits and '-'"
            )
    return "/" + "/".join(words), tokens[index:]


def is_menu_word(token: Token) -> bool:
    """Tell whether ``token`` continues a menu path rather than starting the command."""
    return (
        token.key is None
        and not token.quoted
        and not token.bracket
        and token.raw not in VERBS
        and MENU_WORD.match(token.raw) is not None
    )


def build_command(line: LogicalLine, path: str, tokens: list[Token]) -> RscCommand:
    """Build a command from its verb token and the tokens after it."""
    verb_token = tokens[0]
    if verb_token.key is not None or verb_token.quoted or not VERB_WORD.match(verb_token.raw):
        raise line.error(
            verb_token.offset,
            f"expected a command such as 'add' or 'set' after menu '{path}', "
            f"found '{verb_token.raw}'",
        )
    rest = tokens[1:]
    selector: str | None = None
    selector_filter: dict[str, str] | None = None
    if rest and verb_token.raw not in CREATING_VERBS and is_selector(rest[0]):
        selector = rest[0].raw
        selector_filter = parse_find_filter(line, rest[0]) if rest[0].bracket else None
        rest = rest[1:]
    return RscCommand(
        path=path,
        verb=verb_token.raw,
        selector=selector,
        selector_filter=selector_filter,
        properties=parse_properties(line, rest),
        line=line.line,
    )


def is_selector(token: Token) -> bool:
    """Tell whether the token after the verb selects an item (``0``, ``*1A``, ``[ find ]``)."""
    if token.bracket:
        return True
    return token.key is None and not token.raw.startswith("!")


def parse_find_filter(line: LogicalLine, token: Token) -> dict[str, str] | None:
    """Return the ``key=value`` terms of ``[ find k=v ... ]``, or None for other expressions."""
    inner = token.raw[1:-1]
    inner_line = LogicalLine(inner, ((0, *line.position(token.offset + 1)),))
    words = tokenize(inner_line)
    if not words or words[0].raw != "find":
        return None
    terms = words[1:]
    if terms and terms[0].raw == "where":
        terms = terms[1:]
    result: dict[str, str] = {}
    for term in terms:
        if term.key is None or term.bracket:
            return None
        result[term.key] = term.value
    return result


def parse_properties(line: LogicalLine, tokens: list[Token]) -> list[tuple[str, str | None]]:
    """Turn ``key=value``, ``!key`` and bare flag tokens into ordered properties."""
    properties: list[tuple[str, str | None]] = []
    prefix: str | None = None
    for token in tokens:
        if token.bracket:
            raise line.error(
                token.offset, f"unexpected '{token.raw}'; only one item selector is allowed"
            )
        if token.key is None:
            name = token.raw[1:] if token.raw.startswith("!") else token.raw
            if token.quoted or not PROPERTY_NAME.match(name):
                raise line.error(
                    token.offset,
                    f"value '{token.raw}' has no property name; write it as name=value",
                )
            properties.append((token.raw, None))
            continue
        key = expand_key(line, token, prefix)
        prefix = key.rpartition(".")[0] or None
        properties.append((key, token.value))
    return properties


def expand_key(line: LogicalLine, token: Token, prefix: str | None) -> str:
    """Expand the dotted shorthand ``.network`` to ``output.network`` and check the name."""
    key = token.key or ""
    if key.startswith("."):
        if prefix is None:
            raise line.error(
                token.offset,
                f"property '{key}' continues a dotted prefix but the property before it "
                "has none; write the full name such as output.network",
            )
        key = prefix + key
    if not PROPERTY_NAME.match(key):
        raise line.error(
            token.offset, f"invalid property name '{key}'; use letters, digits, '-' and '.'"
        )
    return key


def detect_style(commands: list[RscCommand], inline_commands: int) -> str:
    """Guess the export style from how the commands were written.

    ``inline_commands`` counts commands written on the same line as their menu path.
    NOTE: verbose is recognised by its many ``!name`` unset tokens. A compact export that
    unsets properties on a tenth of its commands or more would be reported as verbose.
    """
    if not commands:
        return "compact"
    if inline_commands * 2 > len(commands):
        return "terse"
    unsets = sum(
        1 for command in commands if any(name.startswith("!") for name, _ in command.properties)
    )
    if unsets >= 2 and unsets * 10 >= len(commands):
        return "verbose"
    return "compact"
