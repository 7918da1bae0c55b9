"""Split export text into logical lines and tokens, decoding RouterOS escapes.

A physical line that ends with an unescaped backslash continues on the next line. The
backslash and the next line's leading indentation are dropped, and nothing is inserted in
their place. That covers the three ways the exporter wraps: ``key=\\`` breaks after
``=``, ``value \\`` breaks between tokens (the space before the backslash separates
them), and a quoted value may break mid-token. A space that must start a continuation
line is escaped as ``\\_``. Spaces or tabs after the continuation backslash are ignored.

NOTE: older RouterOS documentation treats a continuation outside quotes as one space,
but exports write ``ntp-server=\\`` with the value on the next line, which only reads
right when the join adds nothing. This parser follows the exports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from routeros.rsc.model import RscSyntaxError

# Escapes with a fixed meaning in RouterOS scripts.
# NOTE: sources disagree on "\f" (0xFF or form feed 0x0C), and no device was checked.
# The parser reads 0xFF, and the renderer never writes "\f".
SIMPLE_ESCAPES: dict[str, bytes] = {
    '"': b'"',
    "\\": b"\\",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "$": b"$",
    "?": b"?",
    "_": b" ",
    "a": b"\x07",
    "b": b"\x08",
    "f": b"\xff",
    "v": b"\x0b",
}
HEX_DIGITS = "0123456789ABCDEF"
WHITESPACE = " \t"


@dataclass(frozen=True)
class LogicalLine:
    """One command or comment after joining its continuation lines.

    ``segments`` maps offsets in ``text`` back to the file: each entry is
    ``(offset in text, physical line, 1-based column of that offset)``.
    """

    text: str
    segments: tuple[tuple[int, int, int], ...]

    @property
    def line(self) -> int:
        """The 1-based number of the first physical line."""
        return self.segments[0][1]

    def position(self, offset: int) -> tuple[int, int]:
        """Return the (line, column) in the file of ``offset`` in ``text``."""
        for start, line, column in reversed(self.segments):
            if offset >= start:
                return line, column + offset - start
        return self.segments[0][1], self.segments[0][2]

    def error(self, offset: int, message: str) -> RscSyntaxError:
        """Build a syntax error located at ``offset`` in ``text``."""
        line, column = self.position(offset)
        return RscSyntaxError(message, line=line, column=column)


@dataclass(frozen=True)
class Token:
    """One whitespace-separated word of a command.

    ``key`` is the text before the first unquoted ``=`` (None without one). ``value`` is
    the decoded text after it, or the whole decoded word when ``key`` is None.
    ``bracket`` marks a ``[ ... ]`` expression, whose ``value`` is its raw text.
    """

    raw: str
    key: str | None
    value: str
    quoted: bool
    bracket: bool
    offset: int


def split_physical_lines(text: str) -> list[str]:
    """Split on LF, dropping one CR before each LF and the empty tail after a final LF."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def continuation_prefix(line: str) -> str | None:
    """Return ``line`` without its continuation backslash, or None if it has none.

    The backslash counts only when it is not itself escaped, and spaces or tabs after it
    are dropped with it.
    """
    trimmed = line.rstrip(WHITESPACE)
    count = len(trimmed) - len(trimmed.rstrip("\\"))
    return trimmed[:-1] if count % 2 == 1 else None


def iter_logical_lines(text: str) -> Iterator[LogicalLine]:
    """Yield the logical lines of ``text``, joining continuation lines.

    Comment lines (``#`` in column 1) are never continued, because RouterOS writes them
    whole. Raises RscSyntaxError for a continuation backslash on the last line.
    """
    physical = split_physical_lines(text)
    index = 0
    while index < len(physical):
        current = physical[index]
        segments = [(0, index + 1, 1)]
        parts = [current]
        index += 1
        if current.startswith("#"):
            yield LogicalLine(current, tuple(segments))
            continue
        length = len(current)
        while (prefix := continuation_prefix(parts[-1])) is not None:
            length -= len(parts[-1]) - len(prefix)
            parts[-1] = prefix
            if index >= len(physical):
                raise RscSyntaxError(
                    "continuation backslash at end of file; remove the trailing '\\' "
                    "or add the line it continues to",
                    line=index,
                    column=len(physical[index - 1].rstrip(WHITESPACE)),
                )
            following = physical[index]
            stripped = following.lstrip(WHITESPACE)
            segments.append((length, index + 1, len(following) - len(stripped) + 1))
            parts.append(stripped)
            length += len(stripped)
            index += 1
        yield LogicalLine("".join(parts), tuple(segments))


def decode_escape(line: LogicalLine, offset: int) -> tuple[bytes, int]:
    """Decode the escape whose backslash is at ``offset``; return its bytes and next offset."""
    text = line.text
    if offset + 1 >= len(text):
        raise line.error(offset, "backslash at end of line; write '\\\\' for a literal backslash")
    char = text[offset + 1]
    if char in HEX_DIGITS:
        pair = text[offset + 1 : offset + 3]
        if len(pair) == 2 and all(digit in HEX_DIGITS for digit in pair):
            return bytes([int(pair, 16)]), offset + 3
        raise line.error(
            offset,
            f"invalid escape '\\{pair}'; a byte escape is '\\' and two uppercase hex digits",
        )
    if char in SIMPLE_ESCAPES:
        return SIMPLE_ESCAPES[char], offset + 2
    if char.isascii() and char.isprintable() and not char.isalnum():
        # Punctuation such as "\[" or "\=" stands for itself in RouterOS scripts.
        return char.encode("ascii"), offset + 2
    raise line.error(
        offset,
        f"invalid escape '\\{char}'; use one of \\\" \\\\ \\n \\r \\t \\$ \\? \\_ "
        "\\a \\b \\f \\v or \\HH with uppercase hex",
    )


def encode_literal(line: LogicalLine, offset: int) -> bytes:
    """Return the file bytes of the character at ``offset``."""
    try:
        return line.text[offset].encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise line.error(offset, "character cannot be encoded as UTF-8; remove it") from None


def scan_bracket(line: LogicalLine, start: int) -> Token:
    """Read a ``[ ... ]`` expression starting at ``start``, honouring nesting and quotes."""
    text = line.text
    depth = 0
    in_quote = False
    position = start
    while position < len(text):
        char = text[position]
        if in_quote:
            if char == "\\":
                position += 2
                continue
            if char == '"':
                in_quote = False
        elif char == '"':
            in_quote = True
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                raw = text[start : position + 1]
                return Token(raw, None, raw, False, True, start)
        position += 1
    raise line.error(start, "unterminated '[' expression; add the closing ']'")


def scan_word(line: LogicalLine, start: int) -> Token:
    """Read one word starting at ``start``, splitting ``key=value`` and decoding escapes."""
    text = line.text
    buffer = bytearray()
    key: str | None = None
    quoted = False
    in_quote = False
    quote_start = start
    position = start

    while position < len(text):
        char = text[position]
        if char == "\\":
            decoded, position = decode_escape(line, position)
            buffer += decoded
            continue

        if in_quote:
            if char == '"':
                in_quote = False
            else:
                buffer += encode_literal(line, position)
            position += 1
            continue

        if char in WHITESPACE:
            break
        if char == '"':
            in_quote = True
            quoted = True
            quote_start = position
        elif char == "=" and key is None and not quoted:
            key = buffer.decode("utf-8", "surrogateescape")
            buffer.clear()
        else:
            buffer += encode_literal(line, position)
        position += 1

    if in_quote:
        raise line.error(quote_start, "unterminated quoted value; add the closing '\"'")
    value = buffer.decode("utf-8", "surrogateescape")
    return Token(text[start:position], key, value, quoted, False, start)


def tokenize(line: LogicalLine) -> list[Token]:
    """Split a logical command line into tokens."""
    tokens: list[Token] = []
    text = line.text
    position = 0
    while position < len(text):
        if text[position] in WHITESPACE:
            position += 1
            continue
        if text[position] == "[":
            token = scan_bracket(line, position)
        else:
            token = scan_word(line, position)
        tokens.append(token)
        position = token.offset + len(token.raw)
    return tokens
