"""The SSH transport: RouterOS console commands in exec mode, one channel per command.

The user name gets the console options ``+cet512w`` (no colours, dumb terminal, no terminal
detection, 512 columns), so the output carries no escape sequences and is not wrapped.
Output is parsed from ``print terse`` (item lists) and ``print`` (singleton menus), and
failures are recognised by the texts the console prints, because exec mode does not set an
exit status for them.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import asyncssh
import structlog

from routeros.client import Row, export_arguments, parse_version
from routeros.errors import (
    ConnectionLost,
    DeviceTimeout,
    InvalidValue,
    UnknownParameter,
    UnknownPath,
    map_error,
)
from routeros.target import DeviceTarget
from routeros.values import check_property_name, decode_text, encode_text, normalize_path

logger = structlog.get_logger(__name__)

CONSOLE_OPTIONS = "+cet512w"

# Lines the console prints instead of a result when a command fails (RouterOS 6 and 7).
_ERROR_LINE = re.compile(
    r"^(?:bad command name|no such (?:item|command)|invalid value|expected end of command|"
    r"syntax error|failure:|input does not match|not enough permissions|unknown parameter|"
    r"ambiguous value|missing value|value of .* out of range|expected command name)",
    re.IGNORECASE,
)
_ANSI_SEQUENCE = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[A-Za-z/])")
_ITEM_ID = re.compile(r"^\*[0-9A-Fa-f]+$")
# In terse output a value runs up to the next " name=" because values are not quoted.
_TERSE_PROPERTY = re.compile(r"(?:^|\s)(!?[A-Za-z0-9.][A-Za-z0-9_.-]*)=")
_TERSE_PREFIX = re.compile(r"^\s*(?P<id>\*[0-9A-Fa-f]+|\d+)?\s*(?P<flags>(?:[A-Z]\s*)*)(?=\S|$)")
_FLAG_PROPERTIES = {"X": "disabled", "D": "dynamic", "I": "invalid"}
_PRINT_PROPERTY = re.compile(r"^\s*([A-Za-z0-9.][A-Za-z0-9_.-]*):\s?(.*)$")


def clean_output(text: str) -> str:
    """Remove terminal escape sequences and carriage returns from console output."""
    return _ANSI_SEQUENCE.sub("", text).replace("\r", "")


def find_error_line(output: str) -> str | None:
    """Return the first line that is a console error message, or None."""
    for line in output.splitlines():
        if _ERROR_LINE.match(line.strip()):
            return line.strip()
    return None


# Values made only of these characters need no quotes, as in exports. Leaving them bare lets
# the console parse them by the property's type (numbers, ids such as *1, addresses).
_BARE_VALUE = re.compile(r"[A-Za-z0-9._:/*+@,-]+")


def format_value(value: str, encoding: str) -> str:
    """Return a value as the console needs it: bare when safe, else quoted and escaped.

    Raises:
        ValueError: The value cannot be encoded in the device's encoding.
    """
    if _BARE_VALUE.fullmatch(value):
        return value
    return quote_value(value, encoding)


def quote_value(value: str, encoding: str) -> str:
    """Quote a value for the console, escaping what the scripting language requires.

    Bytes outside printable ASCII become ``\\HH`` escapes (uppercase hex, one per byte in the
    device encoding), which the console turns back into exactly those bytes.

    Raises:
        ValueError: The value cannot be encoded in the device's encoding.
    """
    escapes = {
        '"': '\\"',
        "\\": "\\\\",
        "$": "\\$",
        "?": "\\?",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
    }
    out: list[str] = []
    for byte in encode_text(value, encoding):
        char = chr(byte)
        if char in escapes:
            out.append(escapes[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:02X}")
    return '"' + "".join(out) + '"'


def parse_terse(output: str) -> list[Row]:
    """Parse ``print terse`` output into rows.

    Each line contains an optional item number or ``*id``, optional flag letters and then
    ``name=value`` pairs. An id becomes ``.id``; the flags X, D and I become
    ``disabled``/``dynamic``/``invalid`` = ``true`` unless the line lists them itself.

    NOTE: terse values are unquoted, so a value that itself contains `` name=`` is split
    there. The binary API and REST transports have no such ambiguity.
    """
    rows: list[Row] = []
    for line in output.splitlines():
        if not line.strip():
            continue
        prefix = _TERSE_PREFIX.match(line)
        assert prefix is not None  # every group is optional
        row = _terse_properties(line[prefix.end() :])
        item = prefix.group("id")
        if item and item.startswith("*"):
            row = {".id": item, **row}
        for letter in prefix.group("flags").split():
            name = _FLAG_PROPERTIES.get(letter)
            if name is not None:
                row.setdefault(name, "true")
        rows.append(row)
    return rows


def _terse_properties(text: str) -> Row:
    matches = list(_TERSE_PROPERTY.finditer(text))
    row: Row = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        row[match.group(1)] = _unquote(text[match.end() : end].strip())
    return row


def _unquote(value: str) -> str:
    if len(value) < 2 or not (value.startswith('"') and value.endswith('"')):
        return value
    body = value[1:-1]
    return re.sub(r'\\(["\\$?])', r"\1", body)


def parse_print(output: str) -> Row:
    """Parse the ``name: value`` lines that ``print`` shows for a singleton menu."""
    row: Row = {}
    last: str | None = None
    for line in output.splitlines():
        match = _PRINT_PROPERTY.match(line)
        if match is not None:
            last = match.group(1)
            row[last] = match.group(2).rstrip()
        elif last is not None and line.strip():
            # A long value continues on the next line, indented under the value column.
            row[last] += " " + line.strip()
    return row


class _PinnedHostKeyClient(asyncssh.SSHClient):
    """Accepts only the pinned host key (``SHA256:`` fingerprint or OpenSSH key line)."""

    def __init__(self, pinned: str) -> None:
        self._pinned = pinned.strip()

    def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
        if self._pinned.startswith("SHA256:"):
            return bool(key.get_fingerprint("sha256") == self._pinned)
        try:
            expected = asyncssh.import_public_key(self._pinned)
        except (asyncssh.KeyImportError, ValueError):
            return False
        return bool(expected.public_data == key.public_data)


class SshClient:
    """``DeviceClient`` over SSH exec channels."""

    def __init__(self, connection: asyncssh.SSHClientConnection, target: DeviceTarget) -> None:
        self.target = target
        self._connection = connection
        self._healthy = True

    @classmethod
    async def connect(cls, target: DeviceTarget) -> SshClient:
        """Open the SSH connection and authenticate with the password.

        Local SSH keys and agents are never offered: RouterOS refuses password logins for a
        user once any key was tried and accepted for it.

        Raises:
            DeviceError: Connect, host key check or login failed.
        """
        options: dict[str, Any] = {}
        if target.ssh_host_key:
            options["known_hosts"] = ([], [], [])
            options["client_factory"] = lambda: _PinnedHostKeyClient(target.ssh_host_key or "")
        else:
            options["known_hosts"] = None
        action = f"connect to {target.describe()}"
        try:
            connection = await asyncio.wait_for(
                asyncssh.connect(
                    target.host,
                    port=target.port,
                    username=target.username + CONSOLE_OPTIONS,
                    password=target.password,
                    client_keys=None,
                    agent_path=None,
                    preferred_auth=("password", "keyboard-interactive"),
                    # RouterOS 6 offers only ssh-rsa host keys; asyncssh lists it by default,
                    # and naming it here keeps it enabled if that default changes.
                    server_host_key_algs=[
                        "ssh-ed25519",
                        "rsa-sha2-256",
                        "rsa-sha2-512",
                        "ecdsa-sha2-nistp256",
                        "ssh-rsa",
                    ],
                    connect_timeout=target.connect_timeout,
                    login_timeout=target.connect_timeout,
                    **options,
                ),
                timeout=target.connect_timeout,
            )
        except TimeoutError:
            raise DeviceTimeout(f"{action} timed out after {target.connect_timeout:g}s") from None
        except Exception as exc:
            raise map_error(exc, action=action, secret=target.password) from None
        return cls(connection, target)

    @property
    def healthy(self) -> bool:
        """False once the connection failed, a command timed out or the device closed it."""
        return self._healthy and not self._connection.is_closed()

    async def print(
        self,
        path: str,
        *,
        where: dict[str, str] | None = None,
        proplist: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Run ``print terse show-ids`` with a ``where`` filter and parse the lines."""
        menu = _menu(path)
        options = []
        if proplist:
            options.append("proplist=" + ",".join(check_property_name(name) for name in proplist))
        condition = ""
        if where:
            condition = "where " + self._arguments(where)
        try:
            output = await self._run(
                " ".join([f"{menu}/print terse show-ids", *options, condition])
            )
            rows = parse_terse(output)
        except UnknownParameter:
            rows = await self._print_with_find(menu, options, condition)
        if proplist and ".id" not in proplist:
            # show-ids prints the id on every line; the API sends it only when listed.
            for row in rows:
                row.pop(".id", None)
        return rows if limit is None else rows[: max(limit, 0)]

    async def _print_with_find(self, menu: str, options: list[str], condition: str) -> list[Row]:
        """Print without ``show-ids`` and take the ids from ``find``, for consoles without it.

        NOTE: meant for RouterOS 6, whose console is believed to lack ``show-ids``. The
        simulator accepts ``show-ids`` on every version, so tests reach this path only
        through an injected error.
        """
        rows = parse_terse(await self._run(" ".join([f"{menu}/print terse", *options, condition])))
        found = await self._run(f":put [{menu}/find {condition}]".replace(" ]", "]"))
        ids = [item for item in found.strip().split(";") if item]
        if len(ids) == len(rows):
            for row, item_id in zip(rows, ids, strict=True):
                row[".id"] = item_id
        return rows

    async def get(self, path: str) -> Row:
        """Run ``print`` in a singleton menu and parse its ``name: value`` lines."""
        return parse_print(await self._run(f"{_menu(path)}/print"))

    async def add(self, path: str, values: dict[str, str]) -> str:
        """Add an item; ``:put`` prints the new ``.id`` that ``add`` returns."""
        menu = _menu(path)
        output = await self._run(f":put [{menu}/add {self._arguments(values)}]", f"{menu}/add")
        new_id = output.strip().splitlines()[-1].strip() if output.strip() else ""
        return new_id if _ITEM_ID.match(new_id) else ""

    async def set(self, path: str, item_id: str | None, values: dict[str, str]) -> None:
        """Change an item (by ``*id`` or name), or a singleton menu when ``item_id`` is None."""
        item = "" if item_id is None else self._item(item_id) + " "
        await self._run(f"{_menu(path)}/set {item}{self._arguments(values)}")

    async def remove(self, path: str, item_ids: list[str]) -> None:
        """Remove the items in one console command."""
        if not item_ids:
            return
        items = ",".join(self._item(item_id) for item_id in item_ids)
        await self._run(f"{_menu(path)}/remove {items}")

    async def command(self, path: str, args: dict[str, str] | None = None) -> list[Row]:
        """Run a console command; its output, if any, comes back as ``[{"output": text}]``.

        ``.id`` or ``numbers`` becomes the console's positional item list, and an ``add``
        returns ``[{"ret": new_id}]`` as it does over the API.
        """
        menu = _menu(path)
        remaining = dict(args or {})
        if menu.endswith("/add"):
            new_id = await self.add(menu.removesuffix("/add"), remaining)
            return [{"ret": new_id}] if new_id else []
        items = remaining.pop(".id", None) or remaining.pop("numbers", None)
        words = [menu]
        if items:
            words.append(",".join(self._item(item) for item in items.split(",")))
        words.append(self._arguments(remaining))
        output = await self._run(" ".join(word for word in words if word), menu)
        return [{"output": output}] if output.strip() else []

    async def export(self, *, terse: bool = True, show_sensitive: bool = False) -> str:
        """Run ``/export`` on the console, with the sensitive-data word for the version."""
        version = parse_version((await self.get("/system/resource")).get("version", ""))
        arguments = export_arguments(version, terse=terse, show_sensitive=show_sensitive)
        return await self._run(" ".join(["/export", *arguments]))

    async def close(self) -> None:
        """Close the SSH connection without waiting longer than the connect timeout."""
        self._healthy = False
        self._connection.close()
        try:
            await asyncio.wait_for(self._connection.wait_closed(), self.target.connect_timeout)
        except Exception as exc:  # noqa: BLE001 (closing must not fail)
            logger.debug("routeros_close_failed", device=self.target.describe(), error=repr(exc))

    def _arguments(self, values: dict[str, str]) -> str:
        return " ".join(self._argument(name, value) for name, value in values.items())

    def _argument(self, name: str, value: str) -> str:
        try:
            check_property_name(name)
            if name.startswith("!"):
                return name
            return f"{name}={format_value(value, self.target.encoding)}"
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None

    def _item(self, item_id: str) -> str:
        try:
            return format_value(item_id, self.target.encoding)
        except ValueError as exc:
            raise InvalidValue(str(exc)) from None

    async def _run(self, command: str, name: str | None = None) -> str:
        """Run one console command and return its cleaned output.

        ``name`` labels the command in error messages; it defaults to the first word.

        Raises:
            DeviceError: The connection failed, the command timed out or the console
                printed an error line.
        """
        action = f"{name or command.split(' ', 1)[0]} on {self.target.describe()}"
        if not self.healthy:
            raise ConnectionLost(f"{action} not sent: the connection failed or was closed")
        try:
            result = await asyncio.wait_for(
                self._connection.run(command, check=False, encoding=None),
                timeout=self.target.command_timeout,
            )
        except asyncio.CancelledError:
            self._healthy = False
            raise
        except TimeoutError:
            await self.close()
            raise DeviceTimeout(
                f"{action} timed out after {self.target.command_timeout:g}s"
            ) from None
        except Exception as exc:
            await self.close()
            raise map_error(exc, action=action, secret=self.target.password) from None
        output = self._decode(result.stdout) + self._decode(result.stderr)
        error_line = find_error_line(output)
        if error_line is not None:
            raise map_error(error_line, action=action, secret=self.target.password)
        return output

    def _decode(self, data: bytes | str | None) -> str:
        if not data:
            return ""
        raw = (
            data
            if isinstance(data, bytes)
            else data.encode(self.target.encoding, "surrogateescape")
        )
        return clean_output(decode_text(raw, self.target.encoding))


def _menu(path: str) -> str:
    try:
        return normalize_path(path)
    except ValueError as exc:
        raise UnknownPath(str(exc)) from None
