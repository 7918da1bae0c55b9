"""Run one RouterOS API command against a :class:`~simulator.state.DeviceState`.

Every transport (binary API, REST, SSH) turns its input into a command path such as
``/ip/address/add``, its ``=name=value`` attributes, ``?`` query words and ``.tag``-style
API attributes, then calls :func:`execute` and renders the :class:`Result` in its own
format. Trap texts and categories follow what RouterOS sends.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from simulator import schema as schemas
from simulator.query import QueryError, compile_query, matches
from simulator.state import DeviceState, Item, UserInfo, normalize_boolean, parse_id

logger = logging.getLogger(__name__)

# RouterOS trap categories.
CATEGORY_MISSING = 0
CATEGORY_ARGUMENT = 1
CATEGORY_INTERRUPTED = 2
CATEGORY_SCRIPT = 3
CATEGORY_GENERAL = 4
CATEGORY_API = 5

PERMISSION_DENIED = "not enough permissions (9)"
NO_SUCH_ITEM = "no such item (4)"
# Files bigger than this show no ``contents`` in print, so clients must use /file/read.
INLINE_CONTENTS_LIMIT = 4095

PROPERTY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
WRITE_VERBS = frozenset({"add", "set", "remove", "enable", "disable", "unset", "move", "comment"})
# Verbs that address one item of a table and so do not exist on singleton menus.
ITEM_VERBS = frozenset({"add", "remove", "enable", "disable"})
LIST_FLAG_MENUS = ("/ip/", "/ipv6/", "/routing/", "/interface/bridge/port", "/interface/list/member")


@dataclass(frozen=True)
class Trap:
    """One ``!trap`` reply: a message and, for some errors, a category number."""

    message: str
    category: int | None = None


@dataclass
class Result:
    """Replies of one command, before a transport renders them.

    Attributes:
        rows: One dict per ``!re`` sentence, in order.
        done: Attributes of the final ``!done`` (``ret``).
        traps: ``!trap`` replies, sent before ``!done``.
        empty: The command was a query that found nothing (``!empty`` from RouterOS 7.18).
        after_reply: Action to run once the reply is sent, such as a reboot.
    """

    rows: list[dict[str, str]] = field(default_factory=list)
    done: dict[str, str] = field(default_factory=dict)
    traps: list[Trap] = field(default_factory=list)
    empty: bool = False
    after_reply: Callable[[], None] | None = None

    @property
    def done_attributes(self) -> dict[str, str]:
        """Attributes of the final ``!done`` (the same dict as :attr:`done`)."""
        return self.done


class CommandError(Exception):
    """A command failed; carries the traps RouterOS would send."""

    def __init__(self, *traps: Trap) -> None:
        super().__init__(", ".join(trap.message for trap in traps))
        self.traps = list(traps)


class FaultHook(Protocol):
    """Injected failures a transport passes to the executor."""

    def trap_for(self, command: str) -> Trap | None:
        """Return a trap to send for ``command`` instead of running it, or ``None``."""


@dataclass
class Session:
    """A logged-in user on one transport of one device."""

    state: DeviceState
    user: UserInfo
    transport: str = "api"
    faults: FaultHook | None = None

    def can(self, policy: str) -> bool:
        """Return whether the user's group grants ``policy``."""
        return policy in self.user.policies


Handler = Callable[[Session, str, dict[str, str], list[str]], Result]


def execute(
    session: Session,
    command: str,
    attributes: Mapping[str, str] | None = None,
    queries: Sequence[str] = (),
    api_attributes: Mapping[str, str] | None = None,
) -> Result:
    """Run ``command`` and return its replies; command failures come back as traps."""
    del api_attributes  # Tags and other API attributes only matter to the transport.
    attrs = dict(attributes or {})
    try:
        if session.faults is not None:
            injected = session.faults.trap_for(command)
            if injected is not None:
                raise CommandError(injected)
        return _dispatch(session, command, attrs, list(queries))
    except CommandError as error:
        return Result(traps=error.traps)
    except QueryError as error:
        return Result(traps=[Trap(str(error), CATEGORY_API)])
    except Exception:
        # A simulator bug must not take a transport down; the client sees a general failure.
        logger.exception("command %s failed inside the simulator", command)
        return Result(traps=[Trap("failure: internal simulator error", CATEGORY_GENERAL)])


def _dispatch(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    from simulator import commands  # Local import: commands builds on this module.

    special = commands.SPECIAL_COMMANDS.get(command)
    if special is not None:
        return special(session, command, attrs, queries)
    path, _, verb = command.rpartition("/")
    state = session.state
    if not path or not state.has_menu(path) or verb not in GENERIC_VERBS:
        if path and state.has_menu(path) and verb == "export":
            return commands.export_command(session, command, attrs, queries)
        raise unknown_command(state, command)
    table = state.table(path)
    singleton = (table is not None and table.singleton) or schemas.schema_for(path).singleton
    if singleton and verb in ITEM_VERBS:
        raise unknown_command(state, command)
    if verb in WRITE_VERBS and not session.can("write"):
        raise CommandError(Trap(PERMISSION_DENIED))
    return GENERIC_VERBS[verb](session, path, attrs, queries)


def unknown_command(state: DeviceState, command: str) -> CommandError:
    """Build the two traps RouterOS sends for a path or command it does not have."""
    segments = [part for part in command.split("/") if part]
    prefix = ""
    missing = segments[-1] if segments else command
    for segment in segments:
        candidate = f"{prefix}/{segment}"
        if not _is_menu_prefix(state, candidate):
            missing = segment
            break
        prefix = candidate
    return CommandError(
        Trap(f"no such command or directory ({missing})", CATEGORY_MISSING),
        Trap("no such command prefix"),
    )


def _is_menu_prefix(state: DeviceState, candidate: str) -> bool:
    from simulator import commands

    known = [*state.tables, *schemas.KNOWN_EMPTY_MENUS, *commands.SPECIAL_COMMANDS]
    return any(path == candidate or path.startswith(candidate + "/") for path in known)


# -- print ------------------------------------------------------------------------------


def visible_rows(state: DeviceState, path: str) -> list[dict[str, str]]:
    """Return the items of ``path`` as print shows them, computed properties included."""
    if path == "/interface":
        return [_interface_row(state, menu, item) for menu, item in state.interface_items()]
    table = state.table(path)
    if table is None:
        return []
    return [_computed_row(path, table.singleton, item) for item in table.items]


def _computed_row(path: str, singleton: bool, item: Item) -> dict[str, str]:
    row = dict(item)
    if singleton:
        return row
    row = {".id": row.pop(".id", ""), **row}
    if path == "/ip/address":
        row.setdefault("network", _network_of(item.get("address", "")))
        row.setdefault("actual-interface", item.get("interface", ""))
    if path == "/file":
        if int(row.get("size", "0") or 0) > INLINE_CONTENTS_LIMIT:
            row.pop("contents", None)
        return row
    if path.startswith(LIST_FLAG_MENUS):
        row.setdefault("dynamic", "false")
        row.setdefault("invalid", "false")
    if path not in ("/user/group",):
        row.setdefault("disabled", "false")
    return row


def _interface_row(state: DeviceState, menu: str, item: Item) -> dict[str, str]:
    row = _computed_row(menu, False, item)
    row["type"] = schemas.INTERFACE_MENUS[menu]
    row.setdefault("running", "false" if row.get("disabled") == "true" else "true")
    row.setdefault("dynamic", "false")
    return row


def _network_of(address: str) -> str:
    try:
        return str(ipaddress.ip_interface(address).network.network_address)
    except ValueError:
        return ""


def print_items(session: Session, path: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """Implement ``print``/``getall`` with ``.proplist``, ``count-only`` and query words."""
    if not session.can("read"):
        raise CommandError(Trap(PERMISSION_DENIED))
    words = compile_query(queries)
    rows = [row for row in visible_rows(session.state, path) if matches(row, words)]
    if "count-only" in attrs:
        return Result(done={"ret": str(len(rows))})
    proplist = attrs.get(".proplist")
    if proplist is not None:
        names = [name for name in proplist.split(",") if name]
        rows = [{name: row[name] for name in names if name in row} for row in rows]
    return Result(rows=rows, empty=not rows)


# -- add / set / remove -----------------------------------------------------------------


def validate_properties(
    state: DeviceState, path: str, attrs: Mapping[str, str], *, creating: bool
) -> dict[str, str | None]:
    """Check written properties against the menu rules and return them in stored form.

    ``None`` in the result means "unset this property". Raises :class:`CommandError`
    with RouterOS's trap text on the first problem.
    """
    schema = schemas.schema_for(path)
    known = state.export_properties.get(path, set())
    changes: dict[str, str | None] = {}
    for raw_name, value in attrs.items():
        name = raw_name[1:] if raw_name.startswith("!") else raw_name
        if name in (".id", "numbers") or name.startswith("."):
            continue  # Item selectors and API options such as .proplist are not properties.
        if not PROPERTY_NAME.match(name):
            raise CommandError(Trap(f"unknown parameter {name}"))
        if schema.rejects_input(name) or (
            schema.properties is not None and name not in schema.properties and name not in known
        ):
            raise CommandError(Trap(f"unknown parameter {name}"))
        if raw_name.startswith("!"):
            changes[name] = None
        else:
            changes[name] = _stored_value(state, path, schema, name, value)
    if creating:
        for name in schema.required:
            if not changes.get(name):
                # NOTE: the exact RouterOS wording for a missing required argument is not
                # confirmed; tests rely only on the category.
                raise CommandError(Trap(f"failure: {name} is not specified", CATEGORY_ARGUMENT))
    return changes


def _stored_value(state: DeviceState, path: str, schema: schemas.MenuSchema, name: str, value: str) -> str | None:
    if name in schema.flags:
        flag = normalize_boolean(value) if value else "true"
        if flag is None:
            raise CommandError(Trap(f"invalid value for argument {name}", CATEGORY_ARGUMENT))
        return "" if flag == "true" else None
    if name in schema.yes_no:
        if value not in ("yes", "no"):
            raise CommandError(Trap(f"invalid value of {name}, must be either yes or no", CATEGORY_ARGUMENT))
        return "true" if value == "yes" else "false"
    if schema.is_boolean(name):
        stored = normalize_boolean(value)
        if stored is None:
            raise CommandError(Trap(f"invalid value for argument {name}", CATEGORY_ARGUMENT))
        return stored
    check = schema.validators.get(name)
    if check is not None and value and not check(value):
        raise CommandError(Trap(f"invalid value for argument {name}", CATEGORY_ARGUMENT))
    kind = schema.references.get(name)
    if kind is not None and value:
        _check_reference(state, kind, name, value)
    return value


def _check_reference(state: DeviceState, kind: str, name: str, value: str) -> None:
    if kind == "interface":
        found = state.find_interface(value) is not None
    elif kind == "user-group":
        groups = state.table("/user/group")
        found = groups is not None and groups.find(value) is not None
    else:
        found = True
    if not found:
        raise CommandError(Trap(f"input does not match any value of {name}", CATEGORY_ARGUMENT))


def _check_unique(state: DeviceState, path: str, candidate: Mapping[str, str], skip_id: str | None) -> None:
    rule = schemas.schema_for(path).unique
    table = state.table(path)
    if rule is None or table is None:
        return
    keys, message = rule
    if not all(candidate.get(key) for key in keys):
        return
    for item in table.items:
        if item.get(".id") != skip_id and all(_same_value(item.get(key), candidate[key]) for key in keys):
            # Sources show these texts but no category, so none is sent.
            raise CommandError(Trap(message))


def _same_value(stored: str | None, wanted: str) -> bool:
    if stored is None:
        return False
    try:
        return ipaddress.ip_interface(stored) == ipaddress.ip_interface(wanted)
    except ValueError:
        return stored == wanted


def add_item(session: Session, path: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """Implement ``add``: validate, check duplicates, store and return ``ret=*N``."""
    state = session.state
    table = state.table(path)
    if (table is not None and table.singleton) or schemas.schema_for(path).singleton or path == "/interface":
        raise unknown_command(state, f"{path}/add")
    place_before = attrs.pop("place-before", None)
    if place_before is not None:
        _resolve(session, path, place_before)
    changes = validate_properties(state, path, attrs, creating=True)
    stored = {name: value for name, value in changes.items() if value is not None}
    if path == "/ip/address":
        _derive_network(stored)
    _check_unique(state, path, stored, None)
    if path == "/user":
        session.state.passwords[stored["name"]] = stored.pop("password", "")
    item = state.create_item(path, stored)
    if place_before is not None:
        state.move_item(path, item[".id"], _resolve(session, path, place_before)[1][".id"])
    return Result(done={"ret": item[".id"]})


def move_items(session: Session, path: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """Implement ``move =numbers=ids [=destination=id]``: before ``destination`` or to the end."""
    ids = [part for part in attrs.get("numbers", attrs.get(".id", "")).split(",") if part]
    if not ids:
        raise CommandError(Trap("missing value for argument numbers", CATEGORY_ARGUMENT))
    targets = [_resolve(session, path, key)[1][".id"] for key in ids]
    destination = attrs.get("destination")
    before = _resolve(session, path, destination)[1][".id"] if destination else None
    for item_id in targets:
        if item_id != before:
            session.state.move_item(path, item_id, before)
    return Result()


def _derive_network(values: dict[str, str | None]) -> None:
    """Give an address its prefix length (/32 or /128) and, unless set, its network.

    RouterOS stores the network with the address and lists it in exports.
    """
    address = values.get("address") or ""
    if "/" not in address:
        address += "/128" if ":" in address else "/32"
        values["address"] = address
    if not values.get("network"):
        values["network"] = _network_of(address)


def _target_ids(attrs: Mapping[str, str]) -> list[str]:
    raw = attrs.get(".id", attrs.get("numbers", ""))
    return [part for part in raw.split(",") if part]


def _resolve(session: Session, path: str, key: str) -> tuple[str, Item]:
    """Find the item ``key`` names in ``path``; ``/interface`` searches every interface menu."""
    state = session.state
    if path == "/interface":
        found = state.find_interface(key)
        if found is not None:
            return found
    else:
        table = state.table(path)
        item = table.find(key) if table is not None else None
        if item is not None:
            return path, item
    raise CommandError(Trap(NO_SUCH_ITEM))


def set_items(session: Session, path: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """Implement ``set`` for tables (``.id`` list or names) and singleton menus."""
    state = session.state
    table = state.table(path)
    singleton = (table is not None and table.singleton) or schemas.schema_for(path).singleton
    if singleton:
        changes = validate_properties(state, path, attrs, creating=False)
        state.update_item(path, None, changes)
        return Result()
    ids = _target_ids(attrs)
    if not ids:
        raise CommandError(Trap("missing value for argument .id", CATEGORY_ARGUMENT))
    targets = [_resolve(session, path, key) for key in ids]
    for menu, item in targets:
        changes = validate_properties(state, menu, attrs, creating=False)
        if menu == "/ip/address" and changes.get("address"):
            _derive_network(changes)
        merged = {**item, **{k: v for k, v in changes.items() if v is not None}}
        _check_unique(state, menu, merged, item.get(".id"))
        if menu == "/user" and "password" in changes:
            state.passwords[item.get("name", "")] = changes.pop("password") or ""
        state.update_item(menu, item[".id"], changes)
    return Result()


def remove_items(session: Session, path: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """Implement ``remove`` with a comma-joined ``.id`` list; every id must exist."""
    ids = _target_ids(attrs)
    if not ids:
        raise CommandError(Trap("missing value for argument .id", CATEGORY_ARGUMENT))
    targets = [_resolve(session, path, key) for key in ids]
    for menu, item in targets:
        session.state.remove_item(menu, item[".id"])
    return Result()


def _toggle(disabled: str) -> Handler:
    def toggle(session: Session, path: str, attrs: dict[str, str], queries: list[str]) -> Result:
        for key in _target_ids(attrs):
            menu, item = _resolve(session, path, key)
            session.state.update_item(menu, item[".id"], {"disabled": disabled})
        return Result()

    return toggle


def unset_property(session: Session, path: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """Implement ``unset =.id=X =value-name=prop``."""
    name = attrs.get("value-name", "")
    if not name:
        raise CommandError(Trap("missing value for argument value-name", CATEGORY_ARGUMENT))
    table = session.state.table(path)
    if table is not None and table.singleton:
        session.state.update_item(path, None, {name: None})
        return Result()
    ids = _target_ids(attrs)
    if not ids:
        raise CommandError(Trap("missing value for argument .id", CATEGORY_ARGUMENT))
    for key in ids:
        menu, item = _resolve(session, path, key)
        session.state.update_item(menu, item[".id"], {name: None})
    return Result()


GENERIC_VERBS: dict[str, Handler] = {
    "print": print_items,
    "getall": print_items,
    "add": add_item,
    "set": set_items,
    "remove": remove_items,
    "enable": _toggle("false"),
    "disable": _toggle("true"),
    "unset": unset_property,
    "move": move_items,
}


def is_item_id(value: str) -> bool:
    """Return whether ``value`` is a ``*HEX`` id rather than a name."""
    return parse_id(value) is not None
