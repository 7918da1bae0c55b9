"""Paths, text decoding and the typed value model on top of raw RouterOS strings.

Transports return rows as ``dict[str, str]`` exactly as the device sent them. This module adds:

* ``normalize_path`` and ``check_property_name`` for caller input;
* ``decode_text`` / ``encode_text``: RouterOS stores raw bytes without any declared encoding, so
  bytes are decoded with the device's configured encoding and, where that fails, with Python's
  ``backslashreplace`` handler (byte 0xD0 becomes the four characters ``\\xd0``). The fallback
  keeps every byte visible and the text valid Unicode, so it survives JSON, pydantic and
  database columns (``surrogateescape`` text does not);
* parsers for booleans, flags, integers and durations, and per-menu schemas that declare which
  property has which type, so ``"0000"`` in a name stays a string;
* the encode direction: Python values to the strings every RouterOS version accepts.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum

_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PROPERTY_NAME = re.compile(r"^[!.]?[A-Za-z0-9][A-Za-z0-9_.-]*$")


def normalize_path(path: str) -> str:
    """Return a menu path in API form (``/ip/address``) from API or CLI spelling.

    ``/ip/address``, ``ip/address``, ``/ip address`` and ``/ip/address/`` all give
    ``/ip/address``.

    Raises:
        ValueError: The path is empty or a segment has characters no RouterOS menu uses.
    """
    segments = [segment for segment in re.split(r"[/\s]+", path.strip()) if segment]
    if not segments:
        raise ValueError(f"invalid RouterOS path {path!r}: expected a menu such as /ip/address")
    for segment in segments:
        if not _PATH_SEGMENT.fullmatch(segment):
            raise ValueError(
                f"invalid RouterOS path {path!r}: segment {segment!r} may contain only "
                "letters, digits, '-', '_' and '.'"
            )
    return "/" + "/".join(segments)


def check_property_name(name: str) -> str:
    """Return ``name`` unchanged if it is usable as a property or argument name.

    A leading ``!`` (unset a flag) or ``.`` (``.id``, ``.proplist``) is allowed. An ``=`` or a
    control character would corrupt the API word, so they are rejected.

    Raises:
        ValueError: The name is empty or contains characters RouterOS never uses in names.
    """
    if not _PROPERTY_NAME.fullmatch(name):
        raise ValueError(
            f"invalid property name {name!r}: use letters, digits, '-', '_' and '.', "
            "optionally prefixed by '!' or '.'"
        )
    return name


def check_encoding(encoding: str) -> str:
    """Return the canonical codec name for ``encoding``.

    Raises:
        ValueError: Python does not know the encoding.
    """
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f"unknown text encoding {encoding!r}: use a Python codec name such as "
            "'utf-8', 'cp1251' or 'cp1252'"
        ) from None


def decode_text(data: bytes, encoding: str) -> str:
    """Decode device bytes, falling back to ``\\xHH`` escapes for bytes that do not decode."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return data.decode(encoding, errors="backslashreplace")


def repair_text(text: str, encoding: str) -> str:
    """Turn text decoded with ``surrogateescape`` into the ``decode_text`` form.

    Parsers that must see a whole reply at once (JSON bodies, CLI output) decode it with
    ``surrogateescape`` first and repair each value afterwards, so a stray byte costs only
    the value that contains it.
    """
    if not any("\udc80" <= char <= "\udcff" for char in text):
        return text
    return decode_text(text.encode(encoding, errors="surrogateescape"), encoding)


def encode_text(text: str, encoding: str) -> bytes:
    """Encode text for the device.

    Raises:
        ValueError: A character has no representation in the device's encoding. The
            message names that character and its position but not the text, which may be
            a password.
    """
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"character {exc.object[exc.start : exc.end]!r} at position {exc.start} cannot be "
            f"represented in the device encoding {encoding!r}: change the text or the "
            "target's encoding"
        ) from None


class DurationKeyword(StrEnum):
    """Words RouterOS prints where a duration is expected."""

    NEVER = "never"
    IMMEDIATELY = "immediately"
    NONE = "none"
    NONE_DYNAMIC = "none-dynamic"
    NONE_STATIC = "none-static"
    AUTO = "auto"


Duration = timedelta | DurationKeyword

_DURATION_UNITS = re.compile(
    r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+)ms)?(?:(?P<us>\d+)us)?$"
)
# RouterOS 6 and older printed "6w6d18:33:07" and "00:05:00.5".
_DURATION_CLOCK = re.compile(
    r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2}(?:\.\d+)?)$"
)
_TRUE_WORDS = frozenset({"true", "yes"})
_FALSE_WORDS = frozenset({"false", "no"})


def parse_bool(text: str) -> bool:
    """Parse ``true``/``yes`` and ``false``/``no`` (API replies use the first, CLI the second).

    Raises:
        ValueError: The text is not one of the four words.
    """
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"invalid boolean {text!r}: expected true, false, yes or no")


def is_flag_set(row: Mapping[str, str], name: str) -> bool:
    """Return whether a flag property is set; RouterOS lists set flags as ``name=""``."""
    return name in row


def parse_int(text: str) -> int:
    """Parse a decimal or ``0x`` hexadecimal integer.

    Raises:
        ValueError: The text is not an integer.
    """
    stripped = text.strip()
    try:
        return int(stripped, 16) if stripped.lower().startswith("0x") else int(stripped, 10)
    except ValueError:
        raise ValueError(f"invalid integer {text!r}") from None


def parse_duration(text: str) -> Duration:
    """Parse a RouterOS duration such as ``1w2d3h4m5s``, ``100ms``, ``never`` or ``18:33:07``.

    A bare number is taken as seconds, as RouterOS does on input.

    Raises:
        ValueError: The text is neither a duration nor a duration keyword.
    """
    word = text.strip().lower()
    try:
        return DurationKeyword(word)
    except ValueError:
        pass
    if word.isdigit():
        return timedelta(seconds=int(word))
    match = _DURATION_UNITS.match(word) or _DURATION_CLOCK.match(word)
    if not word or match is None:
        raise ValueError(
            f"invalid duration {text!r}: expected e.g. 1w2d3h4m5s, 100ms, 18:33:07 or one of "
            + ", ".join(keyword.value for keyword in DurationKeyword)
        )
    parts = {unit: float(value) for unit, value in match.groupdict().items() if value}
    return timedelta(
        weeks=parts.get("w", 0),
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
        milliseconds=parts.get("ms", 0),
        microseconds=parts.get("us", 0),
    )


def format_duration(value: Duration) -> str:
    """Format a duration the way RouterOS prints it (``1w2d3h4m5s``, ``1s500ms``, ``0s``).

    Raises:
        ValueError: The duration is negative; RouterOS has no negative durations.
    """
    if isinstance(value, DurationKeyword):
        return value.value
    if value < timedelta(0):
        raise ValueError(f"invalid duration {value}: RouterOS durations cannot be negative")
    total_us = value // timedelta(microseconds=1)
    seconds, micros = divmod(total_us, 1_000_000)
    millis, micros = divmod(micros, 1000)
    text = ""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            text += f"{count}{unit}"
    if millis:
        text += f"{millis}ms"
    if micros:
        text += f"{micros}us"
    return text or "0s"


class PropertyKind(StrEnum):
    """Type of a property's raw string."""

    TEXT = "text"
    BOOL = "bool"
    YES_NO = "yes-no"  # boolean that rejects true/false on input
    FLAG = "flag"  # set by presence of the key, unset with "!name"
    INT = "int"
    DURATION = "duration"
    LIST = "list"


MenuSchema = Mapping[str, PropertyKind]

# Booleans that mean the same in every menu. Anything not listed stays text, which keeps names
# such as "0000" and enums that contain yes/no (bridge port "edge") intact.
COMMON_SCHEMA: MenuSchema = {
    "disabled": PropertyKind.BOOL,
    "dynamic": PropertyKind.BOOL,
    "invalid": PropertyKind.BOOL,
    "running": PropertyKind.BOOL,
    "inactive": PropertyKind.BOOL,
    "default": PropertyKind.BOOL,
    "builtin": PropertyKind.BOOL,
}

_COUNTERS = ("rx-byte", "tx-byte", "rx-packet", "tx-packet", "rx-drop", "tx-drop", "link-downs")

MENU_SCHEMAS: dict[str, MenuSchema] = {
    "/interface": {
        "mtu": PropertyKind.INT,
        "actual-mtu": PropertyKind.INT,
        "l2mtu": PropertyKind.INT,
        "max-l2mtu": PropertyKind.INT,
        "slave": PropertyKind.BOOL,
        **{counter: PropertyKind.INT for counter in _COUNTERS},
    },
    "/interface/vlan": {"vlan-id": PropertyKind.INT, "mtu": PropertyKind.INT},
    "/interface/bridge/port": {"pvid": PropertyKind.INT, "hw": PropertyKind.BOOL},
    # RouterOS 6 kept the PoE settings in /interface/ethernet, RouterOS 7 in its poe submenu.
    "/interface/ethernet": {
        "power-cycle-ping-enabled": PropertyKind.YES_NO,
        "power-cycle-interval": PropertyKind.DURATION,
    },
    "/interface/ethernet/poe": {
        "power-cycle-ping-enabled": PropertyKind.YES_NO,
        "power-cycle-interval": PropertyKind.DURATION,
    },
    "/ip/route": {
        "distance": PropertyKind.INT,
        "scope": PropertyKind.INT,
        "target-scope": PropertyKind.INT,
        "active": PropertyKind.BOOL,
    },
    "/ip/dhcp-server": {"lease-time": PropertyKind.DURATION},
    "/ip/dhcp-server/lease": {
        "expires-after": PropertyKind.DURATION,
        "last-seen": PropertyKind.DURATION,
        "lease-time": PropertyKind.DURATION,
    },
    "/ip/firewall/address-list": {"timeout": PropertyKind.DURATION},
    "/ip/firewall/filter": {"bytes": PropertyKind.INT, "packets": PropertyKind.INT},
    "/routing/ospf/interface-template": {"passive": PropertyKind.FLAG},
    "/routing/table": {"fib": PropertyKind.FLAG},
    "/system/resource": {
        "uptime": PropertyKind.DURATION,
        "cpu-count": PropertyKind.INT,
        "cpu-load": PropertyKind.INT,
        "cpu-frequency": PropertyKind.INT,
        "free-memory": PropertyKind.INT,
        "total-memory": PropertyKind.INT,
        "free-hdd-space": PropertyKind.INT,
        "total-hdd-space": PropertyKind.INT,
    },
}


def schema_for(path: str) -> dict[str, PropertyKind]:
    """Return the property kinds known for a menu, common booleans included."""
    return {**COMMON_SCHEMA, **MENU_SCHEMAS.get(normalize_path(path), {})}


def decode_value(text: str, kind: PropertyKind) -> object:
    """Convert one raw string to the Python value for its kind.

    Raises:
        ValueError: The text does not parse as that kind.
    """
    if kind in (PropertyKind.BOOL, PropertyKind.YES_NO):
        return parse_bool(text)
    if kind is PropertyKind.FLAG:
        return True
    if kind is PropertyKind.INT:
        return parse_int(text)
    if kind is PropertyKind.DURATION:
        return parse_duration(text)
    if kind is PropertyKind.LIST:
        return [item for item in text.split(",") if item]
    return text


def decode_row(path: str, row: Mapping[str, str]) -> dict[str, object]:
    """Type the values of one row by the menu's schema; unknown properties stay strings.

    A value that does not parse as its declared kind (a device that sends ``auto`` where the
    schema expects an integer) also stays a string instead of failing the whole row. Flags
    declared in the schema but absent from the row come back as False.
    """
    schema = schema_for(path)
    typed: dict[str, object] = {}
    for name, raw in row.items():
        kind = schema.get(name, PropertyKind.TEXT)
        try:
            typed[name] = decode_value(raw, kind)
        except ValueError:
            typed[name] = raw
    for name, kind in schema.items():
        if kind is PropertyKind.FLAG and name not in row:
            typed[name] = False
    return typed


def encode_value(value: object, kind: PropertyKind = PropertyKind.TEXT) -> str:
    """Convert a Python value to the string RouterOS accepts on input.

    Booleans become ``yes``/``no``, which every version accepts and which the yes/no-only
    properties require. The strings ``true``/``false`` are rewritten the same way for
    properties the schema declares boolean.

    Raises:
        ValueError: The value has no RouterOS spelling (for example a negative duration).
    """
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, timedelta | DurationKeyword):
        return format_duration(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return ",".join(encode_value(item) for item in items)
    if isinstance(value, str):
        if kind in (PropertyKind.BOOL, PropertyKind.YES_NO) and value.lower() in (
            _TRUE_WORDS | _FALSE_WORDS
        ):
            return "yes" if parse_bool(value) else "no"
        return value
    raise ValueError(f"cannot send {type(value).__name__} value {value!r} to RouterOS")


def encode_values(path: str, values: Mapping[str, object]) -> dict[str, str]:
    """Convert typed values for ``add``/``set`` on ``path`` to raw strings.

    A flag property given ``True`` is sent as ``name=""`` and ``False`` as ``!name=""``, which
    is how RouterOS sets and unsets flags.

    Raises:
        ValueError: A name or value is not usable (see ``check_property_name``).
    """
    schema = schema_for(path)
    encoded: dict[str, str] = {}
    for name, value in values.items():
        check_property_name(name)
        kind = schema.get(name, PropertyKind.TEXT)
        if kind is PropertyKind.FLAG and isinstance(value, bool):
            encoded[name if value else f"!{name}"] = ""
            continue
        encoded[name] = encode_value(value, kind)
    return encoded
