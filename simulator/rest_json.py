"""JSON the way RouterOS REST writes and reads it.

RouterOS stores raw bytes and its REST server writes them into JSON strings without
re-encoding, so a CP1251 comment reaches the client as invalid UTF-8 and a control byte such
as ESC appears unescaped when the device misbehaves. :func:`encode` reproduces that from the
simulator's ``str`` values (raw bytes kept with ``surrogateescape``); the standard ``json``
module cannot, because it always escapes or re-encodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

_SHORT_ESCAPES = {0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0C: b"\\f", 0x0D: b"\\r"}


class JsonBodyError(ValueError):
    """The request body is not a JSON object RouterOS would accept."""


def encode(value: object, *, raw_control_bytes: bool = False) -> bytes:
    """Serialize dicts, lists, strings and integers to JSON bytes.

    Strings are written byte for byte (after ``surrogateescape``), so non-UTF-8 bytes pass
    through raw. Bytes below 0x20 are escaped unless ``raw_control_bytes`` is set, which
    reproduces the invalid JSON some RouterOS versions emit.
    """
    out = bytearray()
    _encode_into(out, value, raw_control_bytes)
    return bytes(out)


def decode_body(body: bytes) -> dict[str, str]:
    """Parse a request body into console attributes with string values.

    JSON numbers become their decimal text, booleans ``true`` or ``false`` and lists are
    joined with commas. An empty body is an empty object.

    NOTE: RouterOS also reads octal (``010``) and hex (``0x10``) numbers, which are not JSON
    and are rejected here as an invalid body.

    Raises:
        JsonBodyError: for invalid JSON, a top-level value that is not an object, or a nested
            object as a value.
    """
    return {name: attribute_text(name, value) for name, value in decode_object(body).items()}


def decode_object(body: bytes) -> dict[str, object]:
    """Parse a request body that must be a JSON object; an empty body is an empty object.

    Raises:
        JsonBodyError: for invalid JSON or a top-level value that is not an object.
    """
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body.decode("utf-8", "surrogateescape"))
    except json.JSONDecodeError as error:
        raise JsonBodyError(f"invalid JSON body: {error.msg} at position {error.pos}") from None
    if not isinstance(parsed, dict):
        raise JsonBodyError("JSON body must be an object of property names to values")
    return {str(name): value for name, value in parsed.items()}


def decode_list(value: object) -> list[str]:
    """Return a JSON list (or a comma-separated string) as a list of strings."""
    if isinstance(value, list):
        return [_scalar_text(item) for item in value]
    text = _scalar_text(value)
    return [part for part in text.split(",") if part] if text else []


def attribute_text(name: str, value: object) -> str:
    """Return one JSON attribute value as console text; lists become comma-separated.

    Raises:
        JsonBodyError: when the value is a JSON object.
    """
    if isinstance(value, list):
        return ",".join(_scalar_text(item) for item in value)
    if isinstance(value, dict):
        raise JsonBodyError(f"value of {name} must be a string, number or list, not an object")
    return _scalar_text(value)


def _scalar_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _encode_into(out: bytearray, value: object, raw_control: bool) -> None:
    if isinstance(value, str):
        _encode_string(out, value, raw_control)
    elif isinstance(value, bool):
        out += b"true" if value else b"false"
    elif isinstance(value, int):
        out += str(value).encode()
    elif value is None:
        out += b"null"
    elif isinstance(value, Mapping):
        _encode_object(out, value, raw_control)
    elif isinstance(value, Sequence):
        out += b"["
        for index, item in enumerate(value):
            if index:
                out += b","
            _encode_into(out, item, raw_control)
        out += b"]"
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as RouterOS JSON")


def _encode_object(out: bytearray, value: Mapping[object, object], raw_control: bool) -> None:
    out += b"{"
    for index, (key, item) in enumerate(value.items()):
        if index:
            out += b","
        _encode_string(out, str(key), raw_control)
        out += b":"
        _encode_into(out, item, raw_control)
    out += b"}"


def _encode_string(out: bytearray, text: str, raw_control: bool) -> None:
    out += b'"'
    for byte in text.encode("utf-8", "surrogateescape"):
        if byte == 0x22:
            out += b'\\"'
        elif byte == 0x5C:
            out += b"\\\\"
        elif byte < 0x20 and not raw_control:
            out += _SHORT_ESCAPES.get(byte) or b"\\u%04x" % byte
        else:
            out.append(byte)
    out += b'"'
