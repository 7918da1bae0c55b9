"""A small RouterOS console script reader and runner.

It reads the command forms found in exports and scheduler jobs: menu lines
(``/ip address``), relative commands (``add address=... interface=ether1``), full commands
(``/system backup load name="x" password=""``), ``[ find k=v ]`` and positional selectors,
``!prop`` unsets, bare flags, quoted values with RouterOS escapes and ``\\`` line
continuations. It does not run expressions, variables or control flow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

VERBS = frozenset(
    {
        "add", "set", "remove", "enable", "disable", "unset", "load", "save", "import", "run",
        "print", "export", "reset-configuration", "reboot", "move", "comment",
        "info", "warning", "error", "debug",
    }
)
LOG_VERBS = frozenset({"info", "warning", "error", "debug"})
SELECTING_VERBS = frozenset({"set", "remove", "enable", "disable", "unset", "run"})
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "$": "$", "?": "?", "_": " ",
                   "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_HEX = re.compile(r"[0-9A-Fa-f]{2}")


class ScriptSyntaxError(ValueError):
    """A script line that cannot be read, with its line number."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"{message} (line {line})")
        self.line = line


@dataclass
class ScriptCommand:
    """One command with the same fields as a parsed export command."""

    path: str
    verb: str
    selector: str | None = None
    selector_filter: dict[str, str] | None = None
    properties: list[tuple[str, str | None]] = field(default_factory=list)
    line: int = 0


def parse_script(text: str) -> list[ScriptCommand]:
    """Read ``text`` into commands; comment and blank lines are skipped."""
    commands: list[ScriptCommand] = []
    menu = "/"
    statements = [
        (number, statement) for number, line in _logical_lines(text) for statement in _statements(line, number)
    ]
    for number, line in statements:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = _tokenize(stripped, number)
        path_words: list[str] = []
        if tokens[0].startswith("/"):
            first = tokens.pop(0)
            path_words = [word for word in first.split("/") if word]
            while tokens and tokens[0] not in VERBS and "=" not in tokens[0] and not tokens[0].startswith(("[", '"')):
                path_words.append(tokens.pop(0))
            if not tokens:
                menu = "/" + "/".join(path_words)
                continue
            if tokens[0] not in VERBS and path_words and path_words[-1] in VERBS:
                # A top-level command such as "/import file-name=x" has no menu words.
                tokens.insert(0, path_words.pop())
            path = "/" + "/".join(path_words)
        else:
            path = menu
        commands.append(_command(path, tokens, number))
    return commands


def _statements(line: str, number: int) -> list[str]:
    """Split a line at ``;`` outside quotes and brackets, as the console does."""
    parts: list[str] = []
    current = ""
    in_quotes = False
    depth = 0
    index = 0
    while index < len(line):
        char = line[index]
        if in_quotes and char == "\\" and index + 1 < len(line):
            current += line[index : index + 2]
            index += 2
            continue
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes and char == "[":
            depth += 1
        elif not in_quotes and char == "]":
            depth -= 1
        if char == ";" and not in_quotes and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
        index += 1
    parts.append(current)
    return parts


def _command(path: str, tokens: list[str], number: int) -> ScriptCommand:
    verb = tokens.pop(0)
    if verb not in VERBS:
        raise ScriptSyntaxError(f"bad command name {verb}", number)
    command = ScriptCommand(path=path.rstrip("/") or "/", verb=verb, line=number)
    if tokens and verb in SELECTING_VERBS and _is_selector(tokens[0]):
        command.selector = tokens.pop(0)
        command.selector_filter = _find_filter(command.selector)
    for token in tokens:
        if verb in LOG_VERBS and "=" not in token:
            # "/log info text" takes its message as a positional word.
            command.properties.append(("message", unquote(token)))
            continue
        name, has_value, value = token.partition("=")
        command.properties.append((name, unquote(value) if has_value else None))
    return command


def _is_selector(token: str) -> bool:
    if token.startswith("["):
        return True
    return "=" not in token and not token.startswith("!")


def _find_filter(selector: str) -> dict[str, str] | None:
    inner = selector.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        return None
    words = _tokenize(inner[1:-1].strip(), 0)
    if not words or words[0] != "find":
        return None
    found: dict[str, str] = {}
    for word in words[1:]:
        if word == "where":
            continue
        name, _, value = word.partition("=")
        found[name] = unquote(value)
    return found


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join ``\\``-continued lines; inside quotes the break vanishes, outside it is a space."""
    result: list[tuple[int, str]] = []
    pending = ""
    start = 0
    in_quotes = False
    for index, raw in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = raw.lstrip() if pending else raw
        if not pending:
            start = index
        in_quotes = _quote_state(line, in_quotes)
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1] + ("" if in_quotes else " ")
            continue
        result.append((start, pending + line))
        pending = ""
        in_quotes = False
    if pending:
        result.append((start, pending))
    return result


def _quote_state(line: str, in_quotes: bool) -> bool:
    escaped = False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\" and in_quotes:
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
    return in_quotes


def _tokenize(line: str, number: int) -> list[str]:
    tokens: list[str] = []
    current = ""
    in_quotes = False
    depth = 0
    index = 0
    while index < len(line):
        char = line[index]
        if in_quotes and char == "\\" and index + 1 < len(line):
            current += line[index : index + 2]
            index += 2
            continue
        if char == '"':
            in_quotes = not in_quotes
        elif not in_quotes and char == "[":
            depth += 1
        elif not in_quotes and char == "]":
            depth -= 1
        if char.isspace() and not in_quotes and depth == 0:
            if current:
                tokens.append(current)
            current = ""
        else:
            current += char
        index += 1
    if in_quotes:
        raise ScriptSyntaxError("unterminated quoted string", number)
    if current:
        tokens.append(current)
    return tokens


def unquote(value: str) -> str:
    """Decode a console value: strip quotes and resolve escapes, ``\\HH`` bytes included.

    Bytes that are not UTF-8 come back as ``surrogateescape`` characters.
    """
    if len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
        return value
    body = value[1:-1]
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\" or index + 1 >= len(body):
            out += char.encode("utf-8", "surrogateescape")
            index += 1
            continue
        pair = body[index + 1 : index + 3]
        if _HEX.fullmatch(pair):
            out.append(int(pair, 16))
            index += 3
            continue
        out += _SIMPLE_ESCAPES.get(body[index + 1], body[index + 1]).encode("utf-8", "surrogateescape")
        index += 2
    return out.decode("utf-8", "surrogateescape")
