"""Read tools that page with an opaque cursor instead of a limit.

A page contains the items whose ``.id`` number is greater than the last one of the previous
page, in ``.id`` order. New items get higher ids than existing ones, so items added while a
caller pages appear on a later page, and removed items never shift the rest. Each item that
exists for the whole walk is therefore returned exactly once.

NOTE: this assumes a device never reuses or renumbers ids during a walk. The simulator
behaves so; whether RouterOS keeps ids across a reboot is unverified, and a walk across such
an event could skip or repeat items.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from api.services import Services

if TYPE_CHECKING:
    from api.mcp_tools import ToolRunner

# Below every id number, including the -1 of items without a readable id.
FIRST_PAGE = -2
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                       open_world_hint=False)


class ItemPage(BaseModel):
    """One page of a table."""

    items: list[dict[str, Any]] = Field(description="Items of this page in .id order")
    next_cursor: str | None = Field(
        description="Pass as `cursor` to read the next page; null when this is the last page")


def id_number(item_id: str | None) -> int:
    """Return the number of a ``*HEX`` id, or -1 for an item without a readable id."""
    if not item_id or not item_id.startswith("*"):
        return -1
    try:
        return int(item_id[1:], 16)
    except ValueError:
        return -1


def encode_cursor(device_id: str, filters: dict[str, str], last_id: str) -> str:
    """Return an opaque cursor that resumes after ``last_id`` with the same device and filters."""
    payload = json.dumps({"device": device_id, "filters": filters, "after": last_id},
                         sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, device_id: str, filters: dict[str, str]) -> int:
    """Return the id number a cursor resumes after.

    Raises:
        ToolError: the cursor is malformed or was made for another device or filter.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        after = payload["after"]
        made_for = (payload["device"], payload["filters"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ToolError("cursor is not one this tool returned; pass next_cursor from the previous "
                        "page unchanged, or omit cursor to start from the first page") from None
    if made_for != (device_id, filters):
        raise ToolError("cursor belongs to another device or filter; keep device and filters the "
                        "same while paging, or omit cursor to start over")
    return id_number(after)


def page_rows(rows: list[dict[str, str]], *, after: int, page_size: int) -> tuple[list[dict[str, str]], bool]:
    """Return the rows after id number ``after`` in id order, at most ``page_size``, and if more exist."""
    ordered = sorted((row for row in rows if id_number(row.get(".id")) > after),
                     key=lambda row: id_number(row.get(".id")))
    return ordered[:page_size], len(ordered) > page_size


def register_paged_tools(runner: ToolRunner, services: Services) -> None:
    """Register the cursor-paged read tools on ``runner``."""

    @runner.tool("ip.address.list.v2", title="List IP addresses", tier="read", annotations=READ,
                 description="IPv4 addresses of a device, one page at a time in .id order. "
                             "Optional equality filter on interface. Returns `items` and "
                             "`next_cursor`; pass next_cursor back as `cursor` until it is null. "
                             f"page_size 1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE}).")
    async def ip_address_list_v2(device: str, interface: str | None = None,
                                 cursor: str | None = None,
                                 page_size: int = DEFAULT_PAGE_SIZE) -> ItemPage:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ToolError(f"page_size {page_size} is out of range; use 1 to {MAX_PAGE_SIZE}")
        record = await services.inventory.find(device)
        filters = {"interface": interface} if interface else {}
        after = decode_cursor(cursor, record.id, filters) if cursor else FIRST_PAGE
        # NOTE: the API has no offset, so every page reads the whole filtered table from the
        # device, and only the reply to the caller is small.
        async with services.sessions.session(record) as client:
            rows = await client.print("/ip/address", where=filters or None)
        page, more = page_rows(rows, after=after, page_size=page_size)
        next_cursor = encode_cursor(record.id, filters, page[-1].get(".id", "")) if more else None
        return ItemPage(items=page, next_cursor=next_cursor)
