"""The RouterOS REST transport (RouterOS 7.1 and later) on httpx.

Verbs follow the vendor documentation: GET lists or reads, PUT adds, PATCH sets, DELETE
removes, and POST runs any command (``/rest/system/identity/set`` for singleton menus).
Replies are parsed defensively, because real devices send raw control bytes and non-UTF-8
bytes inside JSON strings and sometimes return one object where a list is documented.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import httpcore
import httpx
import structlog

from routeros.client import Row, export_via_file
from routeros.errors import (
    DeviceError,
    DeviceTimeout,
    InvalidValue,
    ItemNotFound,
    ProtocolViolation,
    UnknownPath,
    map_error,
)
from routeros.target import DeviceTarget, build_ssl_context, verify_peer_certificate
from routeros.values import check_property_name, encode_text, normalize_path, repair_text

logger = structlog.get_logger(__name__)


def escape_control_characters(text: str) -> str:
    """Escape characters below 0x20 that appear raw inside JSON strings.

    RouterOS copies such bytes (an ESC in a DHCP host name) into its JSON unescaped, which
    strict parsers reject. Whitespace between tokens is left alone.
    """
    out: list[str] = []
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            elif char < " ":
                out.append(f"\\u{ord(char):04x}")
                continue
        elif char == '"':
            in_string = True
        out.append(char)
    return "".join(out)


def parse_json_body(data: bytes, encoding: str) -> Any:
    """Parse a REST reply body, repairing raw control characters and undecodable bytes.

    Bytes that do not decode with ``encoding`` end up as ``\\xHH`` text in the value that
    contains them (see ``routeros.values.decode_text``).

    Raises:
        ProtocolViolation: The body is not JSON even after repair.
    """
    text = data.decode(encoding, errors="surrogateescape")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        try:
            parsed = json.loads(escape_control_characters(text))
        except json.JSONDecodeError as exc:
            snippet = repair_text(text[:120], encoding)
            raise ProtocolViolation(
                f"device sent a reply that is not JSON ({exc.msg} at offset {exc.pos}): {snippet!r}"
            ) from None
    return _repair_strings(parsed, encoding)


def _repair_strings(value: Any, encoding: str) -> Any:
    if isinstance(value, str):
        return repair_text(value, encoding)
    if isinstance(value, list):
        return [_repair_strings(item, encoding) for item in value]
    if isinstance(value, dict):
        return {
            repair_text(key, encoding): _repair_strings(item, encoding)
            for key, item in value.items()
        }
    return value


def to_rows(body: Any) -> list[Row]:
    """Return a reply body as rows, wrapping a single object in a list.

    RouterOS sends every value as a string; anything else (numbers, booleans, nested
    lists) is converted to the string RouterOS would have sent.
    """
    if body is None:
        return []
    items = body if isinstance(body, list) else [body]
    rows: list[Row] = []
    for item in items:
        if not isinstance(item, dict):
            raise ProtocolViolation(f"expected JSON objects in the reply, got {item!r:.80}")
        rows.append({str(key): _as_text(value) for key, value in item.items()})
    return rows


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(_as_text(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class _PinnedStream(httpcore.AsyncNetworkStream):
    """Network stream that checks the pinned certificate right after the TLS handshake.

    The ``timeout`` parameters are part of httpcore's stream interface.
    """

    def __init__(self, stream: httpcore.AsyncNetworkStream, target: DeviceTarget) -> None:
        self._stream = stream
        self._target = target

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        tls_stream = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        try:
            verify_peer_certificate(tls_stream.get_extra_info("ssl_object"), self._target)
        except DeviceError:
            await tls_stream.aclose()
            raise
        return tls_stream

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PinningBackend(httpcore.AsyncNetworkBackend):
    """Network backend whose TLS streams are checked before the first request byte is sent.

    Checking in a response hook would be too late, because the request already carried the
    Basic credentials.
    """

    def __init__(self, target: DeviceTarget) -> None:
        self._backend = httpcore.AnyIOBackend()
        self._target = target

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        return _PinnedStream(stream, self._target)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._backend.connect_unix_socket(path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _http_transport(target: DeviceTarget) -> httpx.AsyncHTTPTransport:
    if not target.rest_tls:
        return httpx.AsyncHTTPTransport(retries=0)
    ssl_context = build_ssl_context(target)
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, retries=0)
    if target.tls_fingerprint is not None:
        # httpx has no public hook for its network backend, so the pool is rebuilt with one.
        # test_tls_wrong_fingerprint_rejected fails if httpx stops reading _pool.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=2,
            network_backend=_PinningBackend(target),
        )
    return transport


class RestClient:
    """``DeviceClient`` over the REST API."""

    def __init__(self, http: httpx.AsyncClient, target: DeviceTarget) -> None:
        self.target = target
        self._http = http
        self._closed = False

    @classmethod
    async def connect(cls, target: DeviceTarget) -> RestClient:
        """Create the HTTP client and check the credentials with one cheap request.

        Raises:
            DeviceError: The device is unreachable, fails TLS verification or rejects the
                credentials.
        """
        scheme = "https" if target.rest_tls else "http"
        host = f"[{target.host}]" if ":" in target.host else target.host
        try:
            auth = httpx.BasicAuth(
                encode_text(target.username, target.encoding),
                encode_text(target.password, target.encoding),
            )
        except ValueError:
            # The message of encode_text quotes the text, which here is a secret.
            raise InvalidValue(
                f"connect to {target.describe()} failed: the user name or password has "
                f"characters that encoding {target.encoding!r} cannot represent"
            ) from None
        http = httpx.AsyncClient(
            base_url=f"{scheme}://{host}:{target.port}/rest",
            auth=auth,
            transport=_http_transport(target),
            timeout=httpx.Timeout(target.command_timeout, connect=target.connect_timeout),
            headers={"Accept": "application/json"},
        )
        client = cls(http, target)
        try:
            # Basic auth has no login step, so one small read stands in for it.
            await asyncio.wait_for(
                client.print("/system/identity", proplist=["name"]), target.connect_timeout
            )
        except TimeoutError:
            await client.close()
            raise DeviceTimeout(
                f"connect to {target.describe()} timed out after {target.connect_timeout:g}s"
            ) from None
        except BaseException:
            await client.close()
            raise
        return client

    @property
    def healthy(self) -> bool:
        """False once closed; httpx reconnects by itself after network faults."""
        return not self._closed

    async def print(
        self,
        path: str,
        *,
        where: dict[str, str] | None = None,
        proplist: list[str] | None = None,
        limit: int | None = None,
    ) -> list[Row]:
        """Return the items of a menu, filtered on the device by equality query parameters."""
        params: dict[str, str] = {}
        if proplist:
            params[".proplist"] = ",".join(check_property_name(name) for name in proplist)
        for name, value in (where or {}).items():
            params[check_property_name(name)] = value
        rows = to_rows(await self._request("GET", _url(path), params=params))
        # NOTE: REST has no server-side limit, so every matching row is transferred and the
        # surplus is dropped here.
        return rows if limit is None else rows[: max(limit, 0)]

    async def get(self, path: str) -> Row:
        """Return a singleton menu; an object and a one-element list are both accepted."""
        rows = to_rows(await self._request("GET", _url(path)))
        return rows[0] if rows else {}

    async def add(self, path: str, values: dict[str, str]) -> str:
        """Add an item with PUT and return the ``.id`` of the object the device sends back."""
        rows = to_rows(await self._request("PUT", _url(path), body=values))
        return rows[0].get(".id", "") if rows else ""

    async def set(self, path: str, item_id: str | None, values: dict[str, str]) -> None:
        """PATCH one item, or POST ``<menu>/set`` for a singleton menu."""
        if item_id is None:
            await self._request("POST", _url(path, "set"), body=values)
            return
        await self._request("PATCH", _url(path, item_id), body=values, not_found=ItemNotFound)

    async def remove(self, path: str, item_ids: list[str]) -> None:
        """DELETE each item; the first failure stops the rest."""
        for item_id in item_ids:
            await self._request("DELETE", _url(path, item_id), not_found=ItemNotFound)

    async def command(self, path: str, args: dict[str, str] | None = None) -> list[Row]:
        """POST a command; a reply object becomes one row, an empty reply no rows."""
        return to_rows(await self._request("POST", _url(path), body=args or {}))

    async def export(self, *, terse: bool = True, show_sensitive: bool = False) -> str:
        """Export through a temporary file, as over the binary API."""
        return await export_via_file(self, terse=terse, show_sensitive=show_sensitive)

    async def close(self) -> None:
        """Close the HTTP connections."""
        self._closed = True
        try:
            await asyncio.wait_for(self._http.aclose(), self.target.connect_timeout)
        except Exception as exc:  # noqa: BLE001 (closing must not fail)
            logger.debug("routeros_close_failed", device=self.target.describe(), error=repr(exc))

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, str] | None = None,
        not_found: type[DeviceError] = UnknownPath,
    ) -> Any:
        """Send one request under the command timeout and return its parsed JSON body."""
        action = f"{method} /rest{url} on {self.target.describe()}"
        content = self._encode_body(body, action)
        try:
            response = await asyncio.wait_for(
                self._http.request(
                    method,
                    url,
                    params=params,
                    content=content,
                    headers={"Content-Type": "application/json"} if content else None,
                ),
                timeout=self.target.command_timeout,
            )
        except DeviceError:
            raise
        except TimeoutError:
            raise DeviceTimeout(
                f"{action} timed out after {self.target.command_timeout:g}s"
            ) from None
        except Exception as exc:
            raise map_error(exc, action=action, secret=self.target.password) from None
        if response.status_code >= 400:
            raise self._status_error(response, action, not_found)
        if not response.content.strip():
            return None
        return parse_json_body(response.content, self.target.encoding)

    def _encode_body(self, body: dict[str, str] | None, action: str) -> bytes | None:
        if body is None:
            return None
        try:
            for name in body:
                check_property_name(name)
            return encode_text(json.dumps(body, ensure_ascii=False), self.target.encoding)
        except ValueError as exc:
            raise InvalidValue(f"{action} not sent: {exc}") from None

    def _status_error(
        self, response: httpx.Response, action: str, not_found: type[DeviceError]
    ) -> DeviceError:
        """Build the error for a 4xx/5xx reply from its ``detail`` or ``message`` field."""
        message = ""
        try:
            body = parse_json_body(response.content, self.target.encoding)
        except ProtocolViolation:
            body = None
        if isinstance(body, dict):
            message = str(body.get("detail") or body.get("message") or "")
        if not message and response.status_code != 404:
            message = response.reason_phrase
        return map_error(
            message,
            action=action,
            http_status=response.status_code,
            not_found=not_found,
            secret=self.target.password,
        )


def _url(path: str, item: str | None = None) -> str:
    try:
        menu = normalize_path(path)
    except ValueError as exc:
        raise UnknownPath(str(exc)) from None
    return f"{menu}/{quote(item, safe='*')}" if item is not None else menu
