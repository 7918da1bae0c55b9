"""Unit tests for routeros.values: paths, text decoding, parsing and encoding."""

from datetime import timedelta

import pytest

from routeros.values import (
    DurationKeyword,
    PropertyKind,
    check_property_name,
    decode_row,
    decode_text,
    encode_text,
    encode_value,
    encode_values,
    format_duration,
    is_flag_set,
    normalize_path,
    parse_bool,
    parse_duration,
    parse_int,
    repair_text,
)


@pytest.mark.parametrize(
    "spelling", ["/ip/address", "ip/address", "/ip address", "/ip/address/", "  /ip   address "]
)
def test_normalize_path_accepts_api_and_cli_forms(spelling: str) -> None:
    """Every common spelling of a menu gives the API form."""
    assert normalize_path(spelling) == "/ip/address"


@pytest.mark.parametrize("bad", ["", "/", "/ip/addr;ess", "/ip/$x", "/ip/address?"])
def test_normalize_path_rejects_bad_paths(bad: str) -> None:
    """Empty paths and characters no menu uses raise ValueError naming the path."""
    with pytest.raises(ValueError, match="invalid RouterOS path"):
        normalize_path(bad)


def test_property_name_allows_prefixes_and_rejects_equals() -> None:
    """Names may start with '!' or '.', but '=' and control characters are rejected."""
    assert check_property_name(".id") == ".id"
    assert check_property_name("!keepalive") == "!keepalive"
    assert check_property_name("HTTPS") == "HTTPS"
    for bad in ["a=b", "", "name\n", "two words"]:
        with pytest.raises(ValueError, match="invalid property name"):
            check_property_name(bad)


def test_decode_text_keeps_valid_utf8() -> None:
    """Valid UTF-8 decodes unchanged."""
    assert decode_text("Привет".encode(), "utf-8") == "Привет"


def test_decode_text_escapes_undecodable_bytes() -> None:
    """CP1251 bytes read as UTF-8 become \\xHH text and keep the valid part."""
    data = b"ok \xcf\xf0\xe8"
    text = decode_text(data, "utf-8")
    assert text == "ok \\xcf\\xf0\\xe8"
    assert text.encode("utf-8")  # valid Unicode: survives JSON and databases


def test_decode_text_uses_configured_encoding() -> None:
    """With the device's real code page the bytes decode to the intended text."""
    assert decode_text("Привет".encode("cp1251"), "cp1251") == "Привет"


def test_repair_text_matches_decode_text() -> None:
    """Surrogate-escaped text is repaired to the same form decode_text produces."""
    data = b"caf\xe9 \xc3\xa9"
    escaped = data.decode("utf-8", "surrogateescape")
    assert repair_text(escaped, "utf-8") == decode_text(data, "utf-8")
    assert repair_text("plain", "utf-8") == "plain"


def test_encode_text_rejects_unencodable_characters() -> None:
    """A character outside the device encoding raises ValueError without echoing the text."""
    with pytest.raises(ValueError, match="cannot be represented") as failure:
        encode_text("secret-snow ☃", "cp1251")
    assert "'☃' at position 12" in str(failure.value)
    assert "secret-snow" not in str(failure.value)


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("yes", True), ("false", False), ("no", False)]
)
def test_parse_bool_accepts_api_and_cli_words(text: str, expected: bool) -> None:
    """Both reply words (true/false) and CLI words (yes/no) parse."""
    assert parse_bool(text) is expected


def test_parse_bool_rejects_other_words() -> None:
    """Enum values such as 'auto' are not booleans."""
    with pytest.raises(ValueError, match="invalid boolean"):
        parse_bool("auto")


def test_flag_presence() -> None:
    """A flag is set when its key is present, even with an empty value."""
    assert is_flag_set({"fib": ""}, "fib")
    assert not is_flag_set({"name": "main"}, "fib")


def test_parse_int_decimal_and_hex() -> None:
    """Decimal and 0x-prefixed hexadecimal integers parse; text does not."""
    assert parse_int("1500") == 1500
    assert parse_int("0x8000") == 0x8000
    with pytest.raises(ValueError):
        parse_int("auto")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("100ms", timedelta(milliseconds=100)),
        ("1s500ms", timedelta(seconds=1, milliseconds=500)),
        ("52w1d", timedelta(weeks=52, days=1)),
        ("0s", timedelta(0)),
        ("30", timedelta(seconds=30)),
        ("6w6d18:33:07", timedelta(weeks=6, days=6, hours=18, minutes=33, seconds=7)),
        ("00:05:00", timedelta(minutes=5)),
        ("10m", timedelta(minutes=10)),
    ],
)
def test_parse_duration_units(text: str, expected: timedelta) -> None:
    """Unit strings, bare seconds and the old clock format parse to timedelta."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("word", ["never", "immediately", "none", "none-dynamic", "auto"])
def test_parse_duration_keywords(word: str) -> None:
    """Duration keywords come back as DurationKeyword, not as a number."""
    assert parse_duration(word) == DurationKeyword(word)


@pytest.mark.parametrize("bad", ["", "soon", "5x", "1h1h"])
def test_parse_duration_rejects_garbage(bad: str) -> None:
    """Anything else raises ValueError listing the accepted forms."""
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5), "1w2d3h4m5s"),
        (timedelta(milliseconds=100), "100ms"),
        (timedelta(0), "0s"),
        (DurationKeyword.NEVER, "never"),
    ],
)
def test_format_duration_round_trips(value: timedelta | DurationKeyword, expected: str) -> None:
    """Formatting gives RouterOS spelling, and parsing it gives the value back."""
    assert format_duration(value) == expected
    assert parse_duration(expected) == value


def test_format_duration_rejects_negative() -> None:
    """RouterOS has no negative durations."""
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


def test_decode_row_keeps_names_as_strings() -> None:
    """A name of 0000 stays a string while schema integers and booleans are typed."""
    row = {"name": "0000", "mtu": "1500", "disabled": "false", "comment": ""}
    typed = decode_row("/interface", row)
    assert typed["name"] == "0000"
    assert typed["mtu"] == 1500
    assert typed["disabled"] is False
    assert typed["comment"] == ""


def test_decode_row_flags_by_presence() -> None:
    """A schema flag is True when present with an empty value and False when absent."""
    assert decode_row("/routing/table", {"name": "vrf1", "fib": ""})["fib"] is True
    assert decode_row("/routing/table", {"name": "vrf1"})["fib"] is False


def test_decode_row_leaves_unparseable_values_raw() -> None:
    """A value that does not parse as its kind stays the raw string."""
    assert decode_row("/interface", {"mtu": "auto"})["mtu"] == "auto"


def test_decode_row_leaves_enum_with_yes_alone() -> None:
    """Bridge port edge is an enum containing yes/no, so it stays text."""
    assert decode_row("/interface/bridge/port", {"edge": "yes"})["edge"] == "yes"


def test_encode_value_booleans_as_yes_no() -> None:
    """Booleans go out as yes/no, which every RouterOS version accepts."""
    assert encode_value(True) == "yes"
    assert encode_value(False) == "no"
    assert encode_value(1500) == "1500"
    assert encode_value(["a", "b"]) == "a,b"
    assert encode_value(timedelta(minutes=5)) == "5m"


def test_encode_values_rewrites_true_for_yes_no_only_property() -> None:
    """'true' read back from a reply is sent as 'yes' to a yes/no-only property."""
    encoded = encode_values("/interface/ethernet/poe", {"power-cycle-ping-enabled": "true"})
    assert encoded == {"power-cycle-ping-enabled": "yes"}


def test_encode_values_keeps_text_properties_verbatim() -> None:
    """Text properties are never rewritten, even when they look boolean."""
    assert encode_values("/interface/bridge/port", {"edge": "yes"}) == {"edge": "yes"}
    assert encode_values("/system/identity", {"name": "true"}) == {"name": "true"}


def test_encode_values_flags_set_and_unset() -> None:
    """A flag is set by its bare name and unset with a '!' prefix."""
    assert encode_values("/routing/table", {"fib": True}) == {"fib": ""}
    assert encode_values("/routing/table", {"fib": False}) == {"!fib": ""}


def test_encode_values_rejects_bad_name() -> None:
    """A property name with '=' would corrupt the API word and is rejected."""
    with pytest.raises(ValueError, match="invalid property name"):
        encode_values("/ip/address", {"a=b": "x"})


def test_schema_kind_enum_values() -> None:
    """PropertyKind values are stable strings usable in stored schemas."""
    assert PropertyKind("yes-no") is PropertyKind.YES_NO
