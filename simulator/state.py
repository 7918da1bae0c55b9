"""Configuration state of one simulated RouterOS device, shared by every transport.

Tables are keyed by API menu path (``/ip/address``). Items are ordered dicts of property
name to ``str``. Raw bytes that are not UTF-8 stay lossless as
``bytes.decode("utf-8", "surrogateescape")``. Stored booleans are ``"true"``/``"false"``
and a set flag property is present with the value ``""``.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from simulator import schema as schemas

Item = dict[str, str]
ChangeListener = Callable[[str, Item, bool], None]

BUILTIN_ID_BASE = 0xFFFFFFF0
FULL_POLICY = (
    "local,telnet,ssh,ftp,reboot,read,write,policy,test,winbox,password,web,sniff,sensitive,"
    "api,romon,rest-api"
)
DEFAULT_GROUPS = {
    "read": "local,telnet,ssh,reboot,read,test,winbox,password,web,sniff,sensitive,api,romon,rest-api",
    "write": "local,telnet,ssh,reboot,read,write,test,winbox,password,web,sniff,sensitive,api,romon,rest-api",
    "full": FULL_POLICY,
}
DEFAULT_SERVICES = (
    ("telnet", "23"),
    ("ftp", "21"),
    ("www", "80"),
    ("ssh", "22"),
    ("www-ssl", "443"),
    ("api", "8728"),
    ("winbox", "8291"),
    ("api-ssl", "8729"),
)


def format_id(number: int) -> str:
    """Format an item number as a RouterOS ``.id`` (``*`` + uppercase hex)."""
    return f"*{number:X}"


def parse_id(value: str) -> int | None:
    """Return the number of a ``*HEX`` id, or ``None`` when ``value`` is not one."""
    if not value.startswith("*") or len(value) < 2:
        return None
    try:
        return int(value[1:], 16)
    except ValueError:
        return None


def split_version(version: str) -> tuple[int, ...]:
    """Split ``"7.19.1"`` or ``"6.49rc2"`` into comparable integers ``(7, 19, 1)``."""
    numbers: list[int] = []
    for part in version.split("."):
        digits = ""
        for char in part:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


class RscCommandLike(Protocol):
    """Shape of one command of a parsed export (``routeros.rsc.RscCommand``)."""

    path: str
    verb: str
    selector: str | None
    selector_filter: dict[str, str] | None
    properties: list[tuple[str, str | None]]
    line: int


class ParsedExportLike(Protocol):
    """Shape of a parsed export (``routeros.rsc.ParsedExport``)."""

    header: Any
    commands: list[Any]


class Table:
    """Ordered items of one menu; a singleton menu contains one item without ``.id``."""

    def __init__(self, path: str, *, singleton: bool = False, items: list[Item] | None = None) -> None:
        self.path = path
        self.singleton = singleton
        self.items: list[Item] = items if items is not None else []
        if singleton and not self.items:
            self.items.append({})

    def copy(self) -> Table:
        """Return an independent copy whose items can be changed without touching this one."""
        return Table(self.path, singleton=self.singleton, items=[dict(item) for item in self.items])

    def find(self, key: str) -> Item | None:
        """Find an item by ``*HEX`` id or, for named menus, by ``name``; singletons have neither."""
        if self.singleton:
            return None
        if parse_id(key) is not None:
            return next((item for item in self.items if item.get(".id") == key), None)
        return next((item for item in self.items if item.get("name") == key), None)

    def matching(self, equalities: dict[str, str]) -> list[Item]:
        """Return the items whose stored properties equal every pair of ``equalities``."""
        return [item for item in self.items if all(_loose_equal(item.get(k), v) for k, v in equalities.items())]


def _loose_equal(stored: str | None, wanted: str) -> bool:
    if stored is None:
        return wanted in ("no", "false") or wanted == ""
    return stored == wanted or normalize_boolean(wanted) == stored


def normalize_boolean(value: str) -> str | None:
    """Map RouterOS boolean inputs to the stored ``true``/``false``, else ``None``."""
    lowered = value.lower()
    if lowered in ("yes", "true"):
        return "true"
    if lowered in ("no", "false"):
        return "false"
    return None


@dataclass
class FileBlob:
    """Side data of a ``/file`` item that print does not show (backup snapshots)."""

    snapshot: dict[str, Table] | None = None
    password: str = ""


@dataclass
class UserInfo:
    """An authenticated user and the policy words of their group."""

    name: str
    group: str
    policies: frozenset[str]


@dataclass
class DeviceState:
    """All configuration of one device plus the hooks transports use to watch it.

    Use :meth:`factory` for a fresh device, :meth:`from_export` to load an export and
    :meth:`clone` to give many devices the same starting point cheaply.
    """

    version: str = "7.19"
    board_name: str = "CHR"
    tables: dict[str, Table] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, FileBlob] = field(default_factory=dict)
    export_properties: dict[str, set[str]] = field(default_factory=dict)
    builtins: dict[str, dict[str, Item]] = field(default_factory=dict)
    menu_order: list[str] = field(default_factory=list)
    next_number: int = 1
    boot_time: float = field(default_factory=time.time)
    header: Any = None
    _owned: set[str] = field(default_factory=set)
    _listeners: list[ChangeListener] = field(default_factory=list)
    _reboot_listeners: list[Callable[[], None]] = field(default_factory=list)

    # -- construction -------------------------------------------------------------

    @classmethod
    def factory(cls, version: str = "7.19", *, admin_password: str = "") -> DeviceState:
        """Build a device with RouterOS factory items: ether1..5, services, users, identity."""
        state = cls(version=version)
        for index in range(1, 6):
            state.create_item(
                "/interface/ethernet",
                {"name": f"ether{index}", "default-name": f"ether{index}", "mtu": "1500",
                 "mac-address": f"02:00:00:00:00:{index:02X}"},
            )
        for name, port in DEFAULT_SERVICES:
            state.create_item("/ip/service", {"name": name, "port": port, "disabled": "false"})
        for name, policy in DEFAULT_GROUPS.items():
            state.create_item("/user/group", {"name": name, "policy": policy})
        state.add_user("admin", "full", admin_password)
        state.table("/system/identity", create=True).items[0]["name"] = "MikroTik"
        dns = state.table("/ip/dns", create=True).items[0]
        dns.update({"servers": "", "allow-remote-requests": "false", "cache-size": "2048"})
        state.table("/system/clock", create=True).items[0]["time-zone-name"] = "manual"
        state.table("/snmp", create=True).items[0]["enabled"] = "false"
        for path, table in state.tables.items():
            for item in table.items:
                state.mark_builtin(path, item)
        return state

    @classmethod
    def from_export(
        cls, parsed: ParsedExportLike, *, version: str | None = None, admin_password: str = ""
    ) -> DeviceState:
        """Build a device from a parsed export by applying its commands to factory state.

        Menus the simulator does not model load as generic tables, and every property seen
        in the export becomes known for its menu.
        """
        from simulator.loader import apply_export  # Local import: loader builds on this module.

        header = getattr(parsed, "header", None)
        detected = getattr(header, "version", None) if header is not None else None
        state = cls.factory(version or _short_version(detected) or "7.19", admin_password=admin_password)
        state.header = header
        model = getattr(header, "model", None) if header is not None else None
        if model:
            state.board_name = str(model)
        apply_export(state, parsed.commands)
        return state

    def clone(self) -> DeviceState:
        """Return a device that shares this one's tables until either side writes to one."""
        twin = DeviceState(
            version=self.version,
            board_name=self.board_name,
            tables=dict(self.tables),
            passwords=dict(self.passwords),
            blobs=dict(self.blobs),
            export_properties=self.export_properties,
            builtins=self.builtins,
            menu_order=self.menu_order,
            next_number=self.next_number,
            header=self.header,
        )
        # Neither side owns a shared table any more, so both copy before writing.
        self._owned = set()
        return twin

    def reset_from(self, template: DeviceState) -> None:
        """Replace this device's configuration in place with ``template``'s (state lost).

        Transports hold this object, so it is emptied and refilled rather than replaced.
        """
        self.version = template.version
        self.board_name = template.board_name
        self.tables = dict(template.tables)
        self._owned = set()
        template._owned = set()
        self.passwords = dict(template.passwords)
        self.blobs = dict(template.blobs)
        self.export_properties = template.export_properties
        self.builtins = template.builtins
        self.menu_order = template.menu_order
        self.next_number = template.next_number
        self.header = template.header

    # -- tables -------------------------------------------------------------------

    def has_menu(self, path: str) -> bool:
        """Return whether ``path`` is a menu of this device."""
        return path in self.tables or path in schemas.KNOWN_EMPTY_MENUS

    def table(self, path: str, *, create: bool = False, singleton: bool | None = None) -> Table | None:
        """Return the table at ``path`` for reading; ``create`` makes an empty one if missing."""
        table = self.tables.get(path)
        if table is None and create:
            is_singleton = schemas.schema_for(path).singleton if singleton is None else singleton
            table = Table(path, singleton=is_singleton)
            self.tables[path] = table
            self._owned.add(path)
        return table

    def writable(self, path: str, *, singleton: bool | None = None) -> Table:
        """Return the table at ``path`` for writing, copying it first if another device shares it."""
        table = self.tables.get(path)
        if table is None:
            created = self.table(path, create=True, singleton=singleton)
            assert created is not None
            return created
        if path not in self._owned:
            table = table.copy()
            self.tables[path] = table
            self._owned.add(path)
        return table

    def new_id(self) -> str:
        """Allocate the next ``.id``; ids only ever increase on one device."""
        number = self.next_number
        self.next_number += 1
        return format_id(number)

    def create_item(self, path: str, properties: dict[str, str], *, item_id: str | None = None) -> Item:
        """Append an item to ``path`` with a new (or the given) id and notify listeners."""
        table = self.writable(path)
        item: Item = {".id": item_id or self.new_id()}
        item.update(properties)
        number = parse_id(item[".id"])
        if number is not None and number < BUILTIN_ID_BASE:
            self.next_number = max(self.next_number, number + 1)
        table.items.append(item)
        self.notify(path, item)
        return item

    def mark_builtin(self, path: str, item: Item) -> None:
        """Record ``item`` as a built-in default, so export shows only changes to it."""
        key = item.get(".id", "")
        self.builtins.setdefault(path, {})[key] = dict(item)

    def builtin(self, path: str, item: Item) -> Item | None:
        """Return the default properties of a built-in item, or ``None`` for an added one."""
        return self.builtins.get(path, {}).get(item.get(".id", ""))

    def update_item(self, path: str, item_id: str | None, changes: dict[str, str | None]) -> Item:
        """Apply ``changes`` (``None`` unsets a property) to one item and notify listeners."""
        table = self.writable(path)
        item = table.items[0] if table.singleton else table.find(item_id or "")
        if item is None:
            raise KeyError(item_id)
        for name, value in changes.items():
            if value is None:
                item.pop(name, None)
            else:
                item[name] = value
        self.notify(path, item)
        return item

    def move_item(self, path: str, item_id: str, before_id: str | None) -> None:
        """Move one item right before ``before_id``, or to the end when that is ``None``."""
        table = self.writable(path)
        item = table.find(item_id)
        if item is None:
            raise KeyError(item_id)
        table.items.remove(item)
        target = table.find(before_id) if before_id is not None else None
        if before_id is not None and target is None:
            table.items.append(item)
            raise KeyError(before_id)
        index = table.items.index(target) if target is not None else len(table.items)
        table.items.insert(index, item)
        self.notify(path, item)

    def remove_item(self, path: str, item_id: str) -> Item:
        """Remove one item by id or name and notify listeners that it is dead."""
        table = self.writable(path)
        item = table.find(item_id)
        if item is None:
            raise KeyError(item_id)
        table.items.remove(item)
        self.notify(path, item, dead=True)
        return item

    def interface_items(self) -> Iterator[tuple[str, Item]]:
        """Yield ``(menu path, item)`` for every interface of every interface menu, by id."""
        found: list[tuple[str, Item]] = []
        for path in schemas.INTERFACE_MENUS:
            table = self.tables.get(path)
            if table is not None:
                found.extend((path, item) for item in table.items)
        found.sort(key=lambda pair: parse_id(pair[1].get(".id", "")) or 0)
        return iter(found)

    def find_interface(self, key: str) -> tuple[str, Item] | None:
        """Find an interface by id or name across all interface menus."""
        for path, item in self.interface_items():
            if item.get(".id") == key or item.get("name") == key:
                return path, item
        return None

    # -- users --------------------------------------------------------------------

    def add_user(self, name: str, group: str, password: str) -> Item:
        """Create a user; the password is kept aside because print never shows it."""
        self.passwords[name] = password
        return self.create_item("/user", {"name": name, "group": group, "disabled": "false"})

    def authenticate(self, name: str, password: str) -> UserInfo | None:
        """Return the user when ``name``/``password`` match an enabled user, else ``None``."""
        users = self.table("/user")
        user = users.find(name) if users is not None and parse_id(name) is None else None
        if user is None or user.get("disabled") == "true":
            return None
        if not secrets.compare_digest(self.passwords.get(name, "\0").encode(), password.encode()):
            return None
        return self.user_info(name)

    def user_info(self, name: str) -> UserInfo:
        """Return a user's group and policy words; unknown users get no policies."""
        users = self.table("/user")
        user = users.find(name) if users is not None else None
        group_name = user.get("group", "") if user is not None else ""
        groups = self.table("/user/group")
        group = groups.find(group_name) if groups is not None and group_name else None
        words = (group or {}).get("policy", "").split(",")
        return UserInfo(name=name, group=group_name, policies=frozenset(w for w in words if w and not w.startswith("!")))

    # -- change notification, snapshots, reboot -----------------------------------

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(path, item, dead)`` after every change to any table."""
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def notify(self, path: str, item: Item, dead: bool = False) -> None:
        """Tell every listener that ``item`` in ``path`` changed or, with ``dead``, went away."""
        for listener in list(self._listeners):
            listener(path, dict(item), dead)

    def add_reboot_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` when the device reboots, so transports drop their sessions."""
        self._reboot_listeners.append(listener)

    def remove_reboot_listener(self, listener: Callable[[], None]) -> None:
        """Stop calling ``listener`` on reboot; unknown listeners are ignored."""
        if listener in self._reboot_listeners:
            self._reboot_listeners.remove(listener)

    def reboot(self) -> None:
        """Restart the device: uptime starts again and every transport drops its sessions."""
        self.boot_time = time.time()
        for listener in list(self._reboot_listeners):
            listener()

    def snapshot(self, *, exclude: Iterable[str] = ("/file",)) -> dict[str, Table]:
        """Return a deep copy of every table except ``exclude`` (a backup)."""
        skipped = set(exclude)
        return {path: table.copy() for path, table in self.tables.items() if path not in skipped}

    def restore(self, snapshot: dict[str, Table], *, keep: Iterable[str] = ("/file",)) -> None:
        """Replace all tables but ``keep`` with copies from ``snapshot`` and tell listeners."""
        kept = {path: self.tables[path] for path in keep if path in self.tables}
        self.tables = {path: table.copy() for path, table in snapshot.items()}
        self.tables.update(kept)
        self._owned = set(self.tables)
        numbers = [parse_id(item.get(".id", "")) or 0 for table in self.tables.values() for item in table.items]
        below_builtin = [n for n in numbers if n < BUILTIN_ID_BASE]
        self.next_number = max([self.next_number, *(n + 1 for n in below_builtin)])

    def deep_copy(self) -> DeviceState:
        """Return a fully independent copy without listeners (used for dry runs)."""
        twin = DeviceState(
            version=self.version,
            board_name=self.board_name,
            tables={path: table.copy() for path, table in self.tables.items()},
            passwords=dict(self.passwords),
            blobs=copy.copy(self.blobs),
            export_properties={k: set(v) for k, v in self.export_properties.items()},
            builtins=self.builtins,
            menu_order=self.menu_order,
            next_number=self.next_number,
            header=self.header,
        )
        twin._owned = set(twin.tables)
        return twin

    @property
    def uptime_seconds(self) -> int:
        """Whole seconds since the last boot."""
        return int(time.time() - self.boot_time)

    def version_at_least(self, *wanted: int) -> bool:
        """Return whether this device runs ``wanted`` (``7, 18``) or newer."""
        return split_version(self.version) >= wanted


def _short_version(version: object) -> str | None:
    if not version:
        return None
    text = str(version).split()[0]
    return text or None
