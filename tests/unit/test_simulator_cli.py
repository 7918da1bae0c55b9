"""The console-language parser behind the simulator's SSH console."""

from __future__ import annotations

import pytest

from simulator.cli import CliError, parse_filter, parse_line, split_statements, tokenize

MENUS = {"/ip", "/ip/address", "/ip/firewall", "/ip/firewall/filter", "/interface", "/system", "/system/identity"}


def is_menu(path: str) -> bool:
    return path in MENUS


def test_cli_menu_words_and_slash_form() -> None:
    """Menus are walked word by word or in slash form, from the root or the current menu."""
    spaced = parse_line("/ip address print", "", is_menu)[0]
    slashed = parse_line("/ip/address/print detail", "", is_menu)[0]
    relative = parse_line("address print", "/ip", is_menu)[0]
    parent = parse_line("..", "/ip/address", is_menu)[0]
    root = parse_line("/", "/ip/address", is_menu)[0]

    assert (spaced.path, spaced.verb) == ("/ip/address", "print")
    assert (slashed.path, slashed.verb) == ("/ip/address", "print")
    assert [word.name for word in slashed.arguments] == ["detail"]
    assert (relative.path, relative.verb) == ("/ip/address", "print")
    assert (parent.path, parent.verb) == ("/ip", None)
    assert (root.path, root.verb) == ("", None)


def test_cli_quoting_escapes_and_raw_bytes() -> None:
    """Quoted values take RouterOS escapes; ``\\HH`` bytes form UTF-8 or stay raw bytes."""
    command = parse_line(
        r'/ip address add comment="a \"b\" \\ \D0\A0 \C0 end\_" address=10.0.0.1/24', "", is_menu
    )[0]

    comment = command.argument("comment")
    assert comment is not None
    assert comment.quoted is True
    assert comment.value is not None
    expected = b'a "b" \\ ' + "Р".encode() + b" \xc0 end "
    assert comment.value.encode("utf-8", "surrogateescape") == expected
    assert command.argument("address") is not None


def test_cli_items_find_and_where() -> None:
    """Item numbers, ids, names and ``[ find ]`` become items; ``where`` becomes a filter."""
    numbered = parse_line("set 0,1 disabled=yes", "/ip/address", is_menu)[0]
    named = parse_line("set ether1 mtu=9000", "/interface", is_menu)[0]
    found = parse_line("remove [ find comment=old ]", "/ip/address", is_menu)[0]
    filtered = parse_line("print where interface=ether1 and !disabled", "/ip/address", is_menu)[0]
    unset = parse_line("set 0 !comment", "/ip/address", is_menu)[0]

    assert [word.name for word in numbered.items] == ["0,1"]
    assert [word.name for word in named.items] == ["ether1"]
    assert found.items[0].find is not None
    assert [word.name for word in found.items[0].find] == ["find", "comment"]
    assert filtered.where is not None
    assert filtered.where.matches({"interface": "ether1", "disabled": "false"}) is True
    assert filtered.where.matches({"interface": "ether1", "disabled": "true"}) is False
    assert [word.name for word in unset.arguments] == ["!comment"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/ip addres print", "bad command name addres (line 1 column 5)"),
        ("/ip address frobnicate", "bad command name frobnicate (line 1 column 13)"),
        ('/ip address add comment="open', "syntax error (line 1 column 25)"),
        ("/ip address set [ find", "syntax error (line 1 column 23)"),
        ('/ip address add comment="\\q"', "syntax error (line 1 column 26)"),
    ],
)
def test_cli_errors_name_the_column(line: str, message: str) -> None:
    """Parse errors carry RouterOS wording and the 1-based column."""
    with pytest.raises(CliError) as caught:
        parse_line(line, "", is_menu)

    assert caught.value.render() == message


def test_cli_statements_and_continuations() -> None:
    """``;`` splits statements; scripts join ``\\`` continuations and drop comments."""
    statements = tokenize("/system identity print; /ip address print")
    script = split_statements('# header\n/ip address add \\\n    address=10.0.0.1/24 comment="x\\\n    y"\n\n')

    assert len(statements) == 2
    assert script == [(2, '/ip address add address=10.0.0.1/24 comment="xy"')]


def test_cli_filter_operators() -> None:
    """Filters compare with ``=``, ``!=``, ``~``, ``<``, ``>`` and join with ``or``."""
    words = tokenize('name~"^eth" or mtu>1500')[0]
    either = parse_filter(words)
    not_equal = parse_filter(tokenize("type!=vlan")[0])

    assert either.matches({"name": "ether1", "mtu": "1500"}) is True
    assert either.matches({"name": "bridge", "mtu": "9000"}) is True
    assert either.matches({"name": "bridge", "mtu": "1500"}) is False
    assert not_equal.matches({"type": "ether"}) is True
    assert not_equal.matches({"type": "vlan"}) is False
