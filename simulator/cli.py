"""Parser for the RouterOS console language, as typed at the SSH prompt.

A console line such as ``/ip address set [ find interface=ether1 ] comment="uplink"`` is split
into words, the menu words are walked from the current menu, and what remains becomes a
:class:`CliCommand`: the API path, the command word, positional items, ``name=value``
arguments and an optional ``where`` filter. Errors carry the 1-based column of the offending
word and render the way RouterOS prints them (``bad command name x (line 1 column 5)``).

Strings are ``str`` throughout. Bytes that are not UTF-8 arrive decoded with
``surrogateescape`` and stay that way, so a value typed in CP1251 reaches the state unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Commands the console accepts inside any menu. A word that is neither a submenu nor one of
# these is reported as ``bad command name``.
MENU_COMMANDS = frozenset(
    {
        "add", "comment", "disable", "edit", "enable", "export", "find", "get", "move",
        "print", "remove", "reset", "set", "unset",
    }
)

# Commands whose first bare word names the items to act on (a number, id, name or find).
ITEM_COMMANDS = frozenset(
    {"comment", "disable", "edit", "enable", "get", "move", "remove", "set", "unset"}
)

# Commands that exist only in particular menus, keyed by API path.
PATH_COMMANDS: dict[str, frozenset[str]] = {
    "": frozenset({"export", "import", "quit", "ping", "execute", "beep", "redo", "undo"}),
    "/system/backup": frozenset({"save", "load"}),
    "/system": frozenset({"reboot", "shutdown"}),
    "/system/reset-configuration": frozenset(),
    "/system/script": frozenset({"run"}),
    "/system/scheduler": frozenset(),
    "/file": frozenset({"read"}),
    "/interface": frozenset({"monitor-traffic"}),
}

# Escapes accepted inside double quotes, per the RouterOS scripting manual.
_SIMPLE_ESCAPES = {
    '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "$": "$", "?": "?", "_": " ",
    "a": "\a", "b": "\b", "f": "\f", "v": "\v",
}
_HEX_DIGITS = "0123456789ABCDEFabcdef"


class CliError(Exception):
    """A console error with the text RouterOS prints for it.

    ``column`` is 1-based. When it is set, the message ends with ``(line N column M)`` as the
    console reports parse errors. Otherwise the text is printed as it is (``no such item``,
    ``failure: ...``). ``context`` names the console API command (and
    argument) that failed, which script runs add to the message.
    """

    def __init__(
        self, text: str, column: int | None = None, line: int = 1, context: str | None = None
    ) -> None:
        self.text = text
        self.column = column
        self.line = line
        self.context = context
        super().__init__(self.render())

    def render(self) -> str:
        """Return the error line as the console prints it."""
        if self.column is None:
            return self.text
        return f"{self.text} (line {self.line} column {self.column})"

    def script_message(self) -> str:
        """Return the error as a script run reports it, naming the command and line.

        For example ``input does not match any value of interface (/ip/address/add
        (interface); line 1)``.
        """
        if self.column is not None:
            return self.render()
        where = f"{self.context}; " if self.context else ""
        return f"{self.text} ({where}line {self.line})"


@dataclass(frozen=True)
class Word:
    """One word of a console line.

    ``name`` and ``value`` are split at the first ``=`` outside quotes; ``value`` is ``None``
    for a word without ``=`` (``detail``, ``!keepalive``, ``*1``). ``find`` contains the words
    inside ``[ ... ]`` when the word is a command substitution.
    """

    name: str
    value: str | None
    column: int
    quoted: bool = False
    find: tuple[Word, ...] | None = None


@dataclass(frozen=True)
class Condition:
    """One comparison of a ``where`` or ``find`` filter: ``name op value``."""

    name: str
    op: str  # "=", "!=", "~", "<", ">", "has", "not"
    value: str = ""


@dataclass(frozen=True)
class Filter:
    """A conjunction or disjunction of conditions (``a=1 and b=2``, ``a=1 or a=2``)."""

    conditions: tuple[Condition, ...] = ()
    any_of: bool = False

    def matches(self, item: dict[str, str]) -> bool:
        """Return whether the item satisfies the filter (an empty filter matches everything)."""
        if not self.conditions:
            return True
        results = (_condition_matches(c, item) for c in self.conditions)
        return any(results) if self.any_of else all(results)


@dataclass
class CliCommand:
    """A parsed console command, ready to be mapped onto the console API.

    ``path`` is the menu in API form (``/ip/address``, ``""`` for the root) and ``verb`` the
    command word, or ``None`` when the line only changed the current menu.
    """

    path: str
    verb: str | None
    items: list[Word] = field(default_factory=list)
    arguments: list[Word] = field(default_factory=list)
    where: Filter | None = None
    column: int = 1
    where_column: int | None = None

    def argument(self, name: str) -> Word | None:
        """Return the argument called ``name``, if given."""
        for word in self.arguments:
            if word.name == name:
                return word
        return None

    def has_flag(self, name: str) -> bool:
        """Return whether ``name`` was given, as a bare word or as ``name=yes``."""
        word = self.argument(name)
        if word is None:
            return False
        return word.value is None or word.value in ("", "yes", "true")


def split_statements(text: str) -> list[tuple[int, str]]:
    """Split script text into console lines, numbered from 1.

    Joins ``\\`` + newline continuations (the indent after a continuation counts only outside
    quotes, as in exports), and drops blank lines and ``#`` comments.
    """
    joined = _join_continuations(text)
    statements = []
    for number, line in joined:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            statements.append((number, stripped))
    return statements


def tokenize(line: str, line_number: int = 1) -> list[list[Word]]:
    """Split one console line into statements (separated by ``;``) of words.

    Raises:
        CliError: ``syntax error`` for an unterminated quote or bracket, naming its column.
    """
    lexer = _Lexer(line, line_number)
    return lexer.statements()


def parse_line(
    line: str,
    cwd: str,
    is_menu: Callable[[str], bool],
    line_number: int = 1,
    is_command: Callable[[str, str], bool] | None = None,
) -> list[CliCommand]:
    """Parse a console line typed in menu ``cwd`` into commands.

    ``is_menu(path)`` returns whether an API path such as ``/ip/address`` is a menu of the
    device, which separates menu words from command words. ``is_command(path, word)``
    accepts extra commands of a menu beyond :data:`MENU_COMMANDS` and :data:`PATH_COMMANDS`.

    Raises:
        CliError: with the console's text and column for anything it cannot parse.
    """
    commands = []
    for words in tokenize(line, line_number):
        if words:
            commands.append(parse_words(words, cwd, is_menu, line_number, is_command))
    return commands


def parse_words(
    words: Sequence[Word],
    cwd: str,
    is_menu: Callable[[str], bool],
    line_number: int = 1,
    is_command: Callable[[str, str], bool] | None = None,
) -> CliCommand:
    """Parse the words of one statement (a line part or the inside of ``[ ... ]``).

    Raises:
        CliError: with the console's text and column for anything it cannot parse.
    """
    return _parse_statement(list(words), cwd, is_menu, is_command, line_number)


def parse_filter(words: Sequence[Word], line_number: int = 1) -> Filter:
    """Parse the words after ``where`` (or inside ``find``) into a filter.

    Supports ``name=value``, ``name!=value``, ``name~regex``, ``name<value``, ``name>value``,
    a bare ``name`` (true when set and not ``no``/``false``), ``!name``, and ``and``/``or``
    between them (one kind per filter).

    Raises:
        CliError: ``syntax error`` when ``and`` and ``or`` are mixed or a word cannot be read.
    """
    conditions: list[Condition] = []
    joiners: set[str] = set()
    for word in words:
        if word.value is None and word.name in ("and", "or") and not word.quoted:
            joiners.add(word.name)
            continue
        conditions.append(_parse_condition(word, line_number))
    if len(joiners) > 1:
        raise CliError("syntax error", words[0].column, line_number)
    return Filter(tuple(conditions), any_of=joiners == {"or"})


def menu_words(path: str) -> list[str]:
    """Return the console words of an API path: ``/ip/address`` -> ``["ip", "address"]``."""
    return [part for part in path.split("/") if part]


def console_path(path: str) -> str:
    """Return the console spelling of an API path: ``/ip/address`` -> ``/ip address``."""
    return "/" + " ".join(menu_words(path))


def _parse_statement(
    words: list[Word],
    cwd: str,
    is_menu: Callable[[str], bool],
    is_command: Callable[[str, str], bool] | None,
    line_number: int,
) -> CliCommand:
    path = cwd
    index = 0
    first = words[0]
    if first.value is None and not first.quoted and first.name.startswith("/"):
        path = ""
        segments = [(s, first.column + offset) for s, offset in _split_slashes(first.name)]
        index = 1
    else:
        segments = []
    # Menu words may follow the absolute prefix as separate words: `/ip address print`.
    while True:
        for segment, column in segments:
            if segment == "..":
                path = path.rsplit("/", 1)[0] if path else ""
                continue
            candidate = f"{path}/{segment}"
            if is_menu(candidate):
                path = candidate
                continue
            if _is_command(path, segment) or (is_command is not None and is_command(path, segment)):
                return _parse_arguments(path, segment, column, words, index, line_number)
            raise CliError(f"bad command name {segment}", column, line_number)
        if index >= len(words):
            return CliCommand(path=path, verb=None, column=first.column)
        word = words[index]
        if word.value is not None or word.quoted or word.find is not None:
            raise CliError(f"bad command name {word.name}", word.column, line_number)
        segments = [(s, word.column + offset) for s, offset in _split_slashes(word.name)]
        index += 1


def _split_slashes(text: str) -> list[tuple[str, int]]:
    parts = []
    offset = 0
    for part in text.split("/"):
        if part:
            parts.append((part, offset))
        offset += len(part) + 1
    return parts


def _is_command(path: str, word: str) -> bool:
    if word in MENU_COMMANDS and path:
        return True
    return word in PATH_COMMANDS.get(path, frozenset())


def _parse_arguments(
    path: str, verb: str, column: int, words: list[Word], index: int, line_number: int
) -> CliCommand:
    command = CliCommand(path=path, verb=verb, column=column)
    rest = words[index:]
    for position, word in enumerate(rest):
        if word.value is None and not word.quoted and word.name == "where" and word.find is None:
            command.where = parse_filter(rest[position + 1 :], line_number)
            command.where_column = word.column
            break
        # `set 0 !keepalive` unsets a property; a `!name` word never names an item.
        takes_name = verb in ITEM_COMMANDS and position == 0 and not word.name.startswith("!")
        if word.value is None and (word.find is not None or takes_name or _looks_like_item(word)):
            command.items.append(word)
        else:
            command.arguments.append(word)
    return command


def _looks_like_item(word: Word) -> bool:
    """Return whether a bare word names items by number or id (``0``, ``1,2``, ``*1A``)."""
    return bool(re.fullmatch(r"(\*[0-9A-Fa-f]+|\d+)(,(\*[0-9A-Fa-f]+|\d+))*", word.name))


def _parse_condition(word: Word, line_number: int) -> Condition:
    if word.find is not None:
        raise CliError("syntax error", word.column, line_number)
    if word.value is None:
        if word.name.startswith("!") and len(word.name) > 1:
            return Condition(word.name[1:], "not")
        for op in ("~", "<", ">"):
            name, found, value = word.name.partition(op)
            if found and name:
                return Condition(name, op, value)
        return Condition(word.name, "has")
    if word.name.endswith("!"):
        return Condition(word.name[:-1], "!=", word.value)
    return Condition(word.name, "=", word.value)


def _condition_matches(condition: Condition, item: dict[str, str]) -> bool:
    present = condition.name in item
    value = item.get(condition.name, "")
    if condition.op == "has":
        return present and value not in ("false", "no")
    if condition.op == "not":
        return not present or value in ("false", "no", "")
    if condition.op == "=":
        return present and _same_value(value, condition.value)
    if condition.op == "!=":
        return not present or not _same_value(value, condition.value)
    if condition.op == "~":
        return present and _regex_search(condition.value, value)
    return present and _compare(value, condition.value, condition.op)


def _same_value(stored: str, typed: str) -> bool:
    booleans = {"yes": "true", "no": "false"}
    return booleans.get(stored, stored) == booleans.get(typed, typed)


def _regex_search(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return False


def _compare(stored: str, typed: str, op: str) -> bool:
    left: object = stored
    right: object = typed
    if stored.isdigit() and typed.isdigit():
        left, right = int(stored), int(typed)
    return left < right if op == "<" else left > right  # type: ignore[operator]


def _join_continuations(text: str) -> list[tuple[int, str]]:
    """Join physical lines ending in ``\\`` with the next one, keeping the first line number."""
    physical = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    logical: list[tuple[int, str]] = []
    pending: str | None = None
    start = 0
    for number, line in enumerate(physical, start=1):
        if pending is None:
            pending, start = line, number
        else:
            pending += _continuation(line, inside_quotes=_open_quote(pending))
        if pending.endswith("\\") and not pending.endswith("\\\\"):
            pending = pending[:-1]
            continue
        logical.append((start, pending))
        pending = None
    if pending is not None:
        logical.append((start, pending))
    return logical


def _continuation(line: str, inside_quotes: bool) -> str:
    """Strip the indent of a continuation line: all of it outside quotes, four spaces inside."""
    if not inside_quotes:
        return line.lstrip(" ")
    return line[4:] if line.startswith("    ") else line


def _open_quote(text: str) -> bool:
    inside = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            inside = not inside
    return inside


class _Lexer:
    """Character-level scanner for one console line."""

    def __init__(self, line: str, line_number: int) -> None:
        self.line = line
        self.line_number = line_number
        self.pos = 0

    def statements(self, closing: str | None = None) -> list[list[Word]]:
        statements: list[list[Word]] = [[]]
        while True:
            self._skip_spaces()
            if self.pos >= len(self.line):
                if closing is not None:
                    raise CliError("syntax error", len(self.line) + 1, self.line_number)
                return statements
            char = self.line[self.pos]
            if closing is not None and char == closing:
                self.pos += 1
                return statements
            if char == ";":
                self.pos += 1
                statements.append([])
                continue
            if char in "]}":
                raise CliError("syntax error", self.pos + 1, self.line_number)
            statements[-1].append(self._word())

    def _skip_spaces(self) -> None:
        while self.pos < len(self.line) and self.line[self.pos] in " \t":
            self.pos += 1

    def _word(self) -> Word:
        start = self.pos
        if self.line[self.pos] == "[":
            self.pos += 1
            inner = self.statements(closing="]")
            words = tuple(w for statement in inner for w in statement)
            return Word(name="[]", value=None, column=start + 1, find=words)
        name_parts: list[str] = []
        value_parts: list[str] | None = None
        quoted = False
        while self.pos < len(self.line):
            char = self.line[self.pos]
            if char in " \t;]":
                break
            target = name_parts if value_parts is None else value_parts
            if char == '"':
                quoted = True
                target.append(self._quoted())
            elif char == "=" and value_parts is None and name_parts:
                value_parts = []
                self.pos += 1
            elif char == "[" and value_parts is not None and not value_parts:
                raise CliError("syntax error", self.pos + 1, self.line_number)
            else:
                target.append(char)
                self.pos += 1
        value = None if value_parts is None else "".join(value_parts)
        return Word(name="".join(name_parts), value=value, column=start + 1, quoted=quoted)

    def _quoted(self) -> str:
        # Bytes are collected first because `\D0\A0` is one UTF-8 character split over two
        # escapes; decoding them together keeps the state's surrogateescape convention.
        start = self.pos
        self.pos += 1
        out = bytearray()
        while self.pos < len(self.line):
            char = self.line[self.pos]
            if char == '"':
                self.pos += 1
                return out.decode("utf-8", "surrogateescape")
            if char == "\\":
                out += self._escape()
                continue
            out += char.encode("utf-8", "surrogateescape")
            self.pos += 1
        raise CliError("syntax error", start + 1, self.line_number)

    def _escape(self) -> bytes:
        pair = self.line[self.pos + 1 : self.pos + 3]
        if len(pair) == 2 and all(c in _HEX_DIGITS for c in pair):
            self.pos += 3
            return bytes([int(pair, 16)])
        if pair[:1] in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[pair[0]].encode()
        raise CliError("syntax error", self.pos + 1, self.line_number)
