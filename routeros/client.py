"""The transport-neutral device client interface and the factory that opens one.

Rows are ``dict[str, str]`` holding the raw strings the device sent: ``"0000"`` stays
``"0000"``, booleans stay ``true``/``false`` (or ``yes``/``no`` where the transport prints
them so), empty values stay ``""`` and a set flag is a key with the value ``""``. Typing them
is ``routeros.values``' job. Paths may be given in API form (``/ip/address``) or CLI form
(``/ip address``).
"""

from __future__ import annotations

import re
import secrets
from typing import Protocol, runtime_checkable

import structlog

from routeros.errors import DeviceError, ItemNotFound, ProtocolViolation, UnknownPath
from routeros.target import DeviceTarget

Row = dict[str, str]

logger = structlog.get_logger(__name__)


@runtime_checkable
class DeviceClient(Protocol):
    """One logged-in session with a device, whatever the transport.

    Every method raises ``routeros.errors.DeviceError`` subclasses only, and gives up after the
    target's ``command_timeout`` with ``DeviceTimeout``. A client is not safe for concurrent
    use by several tasks; ``DevicePool`` hands each task its own.
    """

    target: DeviceTarget

    @property
    def healthy(self) -> bool:
        """False once the connection failed or timed out; the client must not be reused."""
        ...

    async def print(
        self,
        path: str,
        *,
        where: dict[str, str] | None = None,
        proplist: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Return the items of a menu whose properties equal every ``where`` entry.

        ``proplist`` limits the properties returned; ``.id`` is returned only when listed.
        ``limit`` caps the number of rows returned.
        """
        ...

    async def get(self, path: str) -> Row:
        """Return the properties of a singleton menu such as ``/system/resource``."""
        ...

    async def add(self, path: str, values: dict[str, str]) -> str:
        """Add an item and return its new ``.id``.

        Returns ``""`` when the device reports no id, as ``/file/add`` before RouterOS 7.13
        does over the API.
        """
        ...

    async def set(self, path: str, item_id: str | None, values: dict[str, str]) -> None:
        """Change an item, or a singleton menu when ``item_id`` is None."""
        ...

    async def remove(self, path: str, item_ids: list[str]) -> None:
        """Remove the items with the given ``.id`` values (or names in named menus)."""
        ...

    async def command(self, path: str, args: dict[str, str] | None = None) -> list[Row]:
        """Run any command (``/system/reboot``, ``/ip/address/print``) and return its rows.

        Data the device sends with the final reply (``ret`` of an ``add``) comes last as a row
        of its own.
        """
        ...

    async def export(self, *, terse: bool = True, show_sensitive: bool = False) -> str:
        """Return the device configuration as ``/export`` prints it."""
        ...

    async def close(self) -> None:
        """Close the connection; never raises."""
        ...


async def open_client(target: DeviceTarget) -> DeviceClient:
    """Connect and log in to ``target`` with its transport.

    Raises:
        DeviceError: Connecting or logging in failed. The subclass names the cause.
    """
    # Imported here so that importing this module stays cheap for code that only needs the
    # interface (workflow sandboxes re-import modules).
    if target.transport in ("api", "api-ssl"):
        from routeros.transports.api import ApiClient

        return await ApiClient.connect(target)
    if target.transport == "rest":
        from routeros.transports.rest import RestClient

        return await RestClient.connect(target)
    from routeros.transports.ssh import SshClient

    return await SshClient.connect(target)


def parse_version(version: str) -> tuple[int, ...]:
    """Return the numeric part of a RouterOS version such as ``7.16rc1 (testing)`` → (7, 16)."""
    numbers: list[int] = []
    for part in version.strip().split(" ")[0].split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.end() != len(part):
            break
    return tuple(numbers)


def export_arguments(
    version: tuple[int, ...], *, terse: bool, show_sensitive: bool
) -> dict[str, str]:
    """Return the ``/export`` arguments that give the requested output on this version.

    RouterOS 6 prints secrets unless the command includes ``hide-sensitive``, and RouterOS 7
    hides them unless it includes ``show-sensitive``. Each version rejects the other's word.
    """
    arguments: dict[str, str] = {}
    if terse:
        arguments["terse"] = ""
    major = version[0] if version else 7
    if major >= 7 and show_sensitive:
        arguments["show-sensitive"] = ""
    if major < 7 and not show_sensitive:
        arguments["hide-sensitive"] = ""
    return arguments


# Bytes requested per /file/read call (RouterOS 7.13 and later); librouteros asks for the same.
_READ_CHUNK_BYTES = 32768


async def export_via_file(client: DeviceClient, *, terse: bool, show_sensitive: bool) -> str:
    """Export to a temporary file on the device, read it back and delete it.

    The API and REST transports need this because ``/export`` without ``file=`` sends its
    output to the console only, so an API caller receives nothing.
    """
    version = parse_version((await client.get("/system/resource")).get("version", ""))
    name = f"tikflow-export-{secrets.token_hex(6)}"
    arguments = export_arguments(version, terse=terse, show_sensitive=show_sensitive)
    await client.command("/export", {**arguments, "file": name})
    file_name = f"{name}.rsc"
    file_row: Row = {}
    try:
        file_row = await _find_file(client, file_name)
        return await _read_file(client, file_row, version)
    finally:
        await _remove_file(client, file_row.get(".id", file_name))


async def _find_file(client: DeviceClient, file_name: str) -> Row:
    rows = await client.print(
        "/file", where={"name": file_name}, proplist=[".id", "name", "size", "contents"]
    )
    if not rows:
        raise ItemNotFound(f"export file {file_name!r} was not created on the device")
    return rows[0]


async def _read_file(client: DeviceClient, file_row: Row, version: tuple[int, ...]) -> str:
    if "contents" in file_row:
        return file_row["contents"]
    file_name = file_row.get("name", "")
    # RouterOS omits "contents" for files above a few tens of KB; /file/read exists from 7.13.
    if version and version < (7, 13):
        raise UnknownPath(
            f"export file {file_name!r} is too large to read over the API before RouterOS "
            "7.13; use the ssh transport for this device"
        )
    size = int(file_row.get("size") or 0)
    parts: list[str] = []
    offset = 0
    while offset < size:
        reply = await client.command(
            "/file/read",
            {"file": file_name, "offset": str(offset), "chunk-size": str(_READ_CHUNK_BYTES)},
        )
        data = "".join(row.get("data", "") for row in reply)
        if not data:
            raise ProtocolViolation(
                f"/file/read returned no data at offset {offset} of {file_name!r}, "
                f"which the device listed with {size} bytes"
            )
        parts.append(data)
        # A device may send less than requested, so advance by what arrived. Exports escape
        # non-ASCII bytes as \HH, so characters and bytes count the same here.
        offset += len(data.encode(client.target.encoding, errors="replace"))
    return "".join(parts)


async def _remove_file(client: DeviceClient, file_id: str) -> None:
    """Delete the temporary file without replacing an error that is already propagating."""
    if not client.healthy:
        return
    try:
        await client.remove("/file", [file_id])
    except DeviceError as exc:
        # NOTE: the file then stays on the device until someone deletes it. It contains the
        # configuration, including secrets when show_sensitive was requested.
        logger.warning(
            "routeros_export_file_left",
            device=client.target.describe(),
            file=file_id,
            error=exc.message,
        )
