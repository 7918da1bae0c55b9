"""The RouterOS API query stack machine used by ``print`` (``?name``, ``?=n=v``, ``?#|`` ...).

The stack starts as "infinitely many true". Each query word pushes one result, and ``?#``
words combine results. An item matches when no ``false`` remains on the stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class QueryError(ValueError):
    """A query word that the stack machine cannot run."""


def compile_query(words: Sequence[str]) -> list[str]:
    """Check query words up front so a bad query fails before any item is read."""
    for word in words:
        if not word.startswith("?") or len(word) < 2:
            raise QueryError(f"invalid query word {word!r}")
        if word[1] == "#":
            for op in word[2:]:
                if not (op.isdigit() or op in "!&|."):
                    raise QueryError(f"unknown query operation {op!r} in {word!r}")
    return list(words)


def matches(item: Mapping[str, str], words: Sequence[str]) -> bool:
    """Return whether ``item`` passes the query ``words``."""
    stack: list[bool] = []
    for word in words:
        body = word[1:]
        if body.startswith("#"):
            _run_operations(stack, body[1:])
        else:
            stack.append(_test(item, body))
    return all(stack)


def _test(item: Mapping[str, str], body: str) -> bool:
    if body.startswith(("=", "<", ">")):
        operator, rest = body[0], body[1:]
        name, has_value, value = rest.partition("=")
        if not has_value:
            raise QueryError(f"query word ?{body} needs name=value")
        return _compare(item.get(name), operator, value)
    if body.startswith("-"):
        return body[1:] not in item
    name, has_value, value = body.partition("=")
    if has_value:
        return _compare(item.get(name), "=", value)
    return name in item


def _compare(stored: str | None, operator: str, value: str) -> bool:
    if stored is None:
        # A missing property equals only the empty string, and never orders.
        return operator == "=" and value == ""
    if operator == "=":
        return stored == value or _boolean_alias(value) == stored
    left, right = _ordering_key(stored), _ordering_key(value)
    if type(left) is not type(right):
        left, right = str(stored), str(value)
    return left < right if operator == "<" else left > right  # type: ignore[operator]


def _boolean_alias(value: str) -> str | None:
    return {"yes": "true", "no": "false"}.get(value)


def _ordering_key(value: str) -> int | str:
    return int(value) if value.lstrip("-").isdigit() else value


def _pop(stack: list[bool]) -> bool:
    # Below the pushed values the stack contains infinitely many true values.
    return stack.pop() if stack else True


def _at(stack: list[bool], index: int) -> bool:
    # Index 0 is the top of the stack.
    return stack[-1 - index] if index < len(stack) else True


def _run_operations(stack: list[bool], ops: str) -> None:
    position = 0
    while position < len(ops):
        char = ops[position]
        if char.isdigit():
            end = position
            while end < len(ops) and ops[end].isdigit():
                end += 1
            value = _at(stack, int(ops[position:end]))
            if end == len(ops):
                # An index that ends the word replaces the whole stack with that value.
                stack[:] = [value]
            else:
                stack.append(value)
                if ops[end] == ".":
                    end += 1  # "." right after an index only ends the index.
            position = end
            continue
        if char == "!":
            stack.append(not _pop(stack))
        elif char in "&|":
            right, left = _pop(stack), _pop(stack)
            stack.append(left and right if char == "&" else left or right)
        elif char == ".":
            stack.append(_at(stack, 0))
        position += 1
