"""Unit tests for the reply parsers: REST JSON repair and SSH console output."""

import pytest

from routeros.errors import ProtocolViolation
from routeros.transports.rest import escape_control_characters, parse_json_body, to_rows
from routeros.transports.ssh import (
    clean_output,
    find_error_line,
    format_value,
    parse_print,
    parse_terse,
    quote_value,
)


def test_rest_json_with_raw_escape_byte_is_repaired() -> None:
    """A raw ESC inside a JSON string is escaped and the body parses."""
    body = b'[{".id":"*1","host-name":"bad\x1bname"}]'
    assert parse_json_body(body, "utf-8") == [{".id": "*1", "host-name": "bad\x1bname"}]


def test_rest_json_escape_keeps_whitespace_between_tokens() -> None:
    """Newlines between tokens are JSON whitespace and stay untouched."""
    text = '[\n {"a":"x\ty"}\n]'
    assert escape_control_characters(text) == '[\n {"a":"x\\u0009y"}\n]'


def test_rest_json_escape_respects_escaped_quotes() -> None:
    """An escaped quote does not end the string for the repair scanner."""
    text = '{"a":"say \\"hi\x01\\""}'
    assert escape_control_characters(text) == '{"a":"say \\"hi\\u0001\\""}'


def test_rest_json_non_utf8_value_uses_fallback() -> None:
    """CP1251 bytes in a UTF-8 body come back as \\xHH text in that value only."""
    body = b'[{"comment":"\xcf\xf0\xe8","name":"ok"}]'
    rows = to_rows(parse_json_body(body, "utf-8"))
    assert rows == [{"comment": "\\xcf\\xf0\\xe8", "name": "ok"}]


def test_rest_json_non_utf8_with_device_encoding() -> None:
    """With the device encoding set to cp1251 the same body decodes cleanly."""
    body = b'{"comment":"\xcf\xf0\xe8"}'
    assert to_rows(parse_json_body(body, "cp1251")) == [{"comment": "При"}]


def test_rest_json_garbage_is_protocol_violation() -> None:
    """A body that is not JSON even after repair raises ProtocolViolation."""
    with pytest.raises(ProtocolViolation, match="not JSON"):
        parse_json_body(b"<html>gateway</html>", "utf-8")


def test_rest_to_rows_wraps_single_object_and_stringifies() -> None:
    """A single object becomes one row, and non-string scalars become RouterOS strings."""
    assert to_rows({"cpu-count": 4, "enabled": True, "x": None}) == [
        {"cpu-count": "4", "enabled": "true", "x": ""}
    ]
    assert to_rows([]) == []
    assert to_rows(None) == []


def test_rest_to_rows_rejects_non_objects() -> None:
    """A list of strings is not a list of rows."""
    with pytest.raises(ProtocolViolation):
        to_rows(["a", "b"])


def test_terse_lines_with_ids_flags_and_spaces() -> None:
    """Terse lines give .id, flag properties and values that contain spaces."""
    output = (
        "*1   address=192.168.88.1/24 network=192.168.88.0 interface=bridge comment=\n"
        "*A X address=10.0.0.1/24 interface=ether2 comment=two words here\n"
        " 0 interface=ether1 version=6.35.4 (stable) unpack=none \n"
    )
    rows = parse_terse(output)
    assert rows[0] == {
        ".id": "*1",
        "address": "192.168.88.1/24",
        "network": "192.168.88.0",
        "interface": "bridge",
        "comment": "",
    }
    assert rows[1][".id"] == "*A"
    assert rows[1]["disabled"] == "true"
    assert rows[1]["comment"] == "two words here"
    assert ".id" not in rows[2]
    assert rows[2]["version"] == "6.35.4 (stable)"


def test_terse_keeps_zero_padded_names() -> None:
    """A name of 0000 stays the string 0000."""
    assert parse_terse("*2   name=0000 disabled=no\n") == [
        {".id": "*2", "name": "0000", "disabled": "no"}
    ]


def test_print_singleton_lines() -> None:
    """The name: value lines of a singleton print become one row."""
    output = "                   uptime: 1d2h3m\n                  version: 7.12.1 (stable)\n"
    assert parse_print(output) == {"uptime": "1d2h3m", "version": "7.12.1 (stable)"}


@pytest.mark.parametrize(
    "line",
    [
        "bad command name foo (line 1 column 1)",
        "no such item",
        "invalid value for argument address",
        "expected end of command (line 1 column 20)",
        "failure: already have such address",
        "input does not match any value of interface",
        "syntax error (line 1 column 3)",
    ],
)
def test_console_error_lines_are_found(line: str) -> None:
    """Each console error text is recognised at the start of a line."""
    assert find_error_line(f"\n{line}\n") == line


def test_console_error_not_found_inside_values() -> None:
    """An error phrase inside a value does not count as an error."""
    assert find_error_line('/ip address add comment="no such item"\n') is None


def test_clean_output_strips_terminal_sequences() -> None:
    """Cursor sequences and carriage returns are removed."""
    assert clean_output("\x1b[9999Bhello\r\n\x1b[c") == "hello\n"


def test_quote_value_escapes_special_and_non_ascii() -> None:
    """Quotes, dollars, question marks and non-ASCII bytes are escaped for the console."""
    assert quote_value('a "b" $c ?d\\', "utf-8") == '"a \\"b\\" \\$c \\?d\\\\"'
    assert quote_value("При", "cp1251") == '"\\CF\\F0\\E8"'
    assert quote_value("line\nnext", "utf-8") == '"line\\nnext"'


def test_format_value_bare_when_safe() -> None:
    """Ids, numbers and addresses stay bare; spaces, quotes and empty values are quoted."""
    assert format_value("*1A", "utf-8") == "*1A"
    assert format_value("10.0.0.1/24", "utf-8") == "10.0.0.1/24"
    assert format_value("ether1,ether2", "utf-8") == "ether1,ether2"
    assert format_value("", "utf-8") == '""'
    assert format_value("two words", "utf-8") == '"two words"'
    assert format_value("!dynamic", "utf-8") == '"!dynamic"'
