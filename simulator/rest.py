"""The RouterOS REST API (``/rest``) of a simulated device, over HTTP and HTTPS.

RouterOS REST is a JSON wrapper over the console API, so every request becomes one console
command run by :mod:`simulator.executor` against the device's shared state:

======  ==============================  ==========================================
verb    target                          console command
======  ==============================  ==========================================
GET     ``/rest/ip/address``            ``print`` (query string = equality filters)
GET     ``/rest/ip/address/*1``         ``print`` of one item (``.id`` or ``name``)
PUT     ``/rest/ip/address``            ``add``, then the created item is returned
PATCH   ``/rest/ip/address/*1``         ``set``, then the updated item is returned
DELETE  ``/rest/ip/address/*1``         ``remove``, empty body
POST    ``/rest/ip/address/print``      any command; ``.proplist`` and ``.query``
======  ==============================  ==========================================

Replies carry every value as a JSON string; errors are ``{"detail", "error", "message"}``.
REST exists only on RouterOS 7, over plain HTTP from 7.9 on. A v6 device returns 404 for ``/rest``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from simulator import rest_json, streaming
from simulator import schema as schemas
from simulator.console import Console
from simulator.executor import Result, Session, execute
from simulator.faults import Faults
from simulator.http import HttpRequest, HttpResponse, HttpServer
from simulator.state import DeviceState
from simulator.tls import make_self_signed

logger = logging.getLogger(__name__)

# Commands that stream until cancelled. Over REST they need `once` or `duration`, because
# without them the router keeps the request open until its session timeout.
STREAMING_COMMANDS = frozenset(
    {"listen", "monitor", "monitor-traffic", "torch", "bandwidth-test", "sniffer", "traffic-monitor"}
)
STREAMING_PATHS = frozenset({"/ping", "/tool/ping", "/tool/traceroute", "/tool/flood-ping"})

_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 500: "Internal Server Error"}
_NOT_FOUND_TRAPS = ("no such item",)


@dataclass(frozen=True)
class RestOptions:
    """Behaviour switches where RouterOS versions or sources disagree.

    Attributes:
        session_timeout: Seconds a streaming command without ``once``/``duration`` runs
            before the router returns ``Session closed`` (RouterOS uses 60).
        singleton_as_object: GET on a singleton menu (``/rest/system/resource``) returns an
            object; ``False`` returns a one-element array as the vendor manual shows.
        created_status: HTTP status of a successful PUT.
        deleted_status: HTTP status of a successful DELETE (the body is always empty).
    """

    session_timeout: float = 60.0
    singleton_as_object: bool = True
    created_status: int = 201
    deleted_status: int = 204


class RestServer:
    """Serve the REST API (and a WebFig stub at ``/``) of one device on one port.

    ``tls`` is ``False`` for plain HTTP, an ``ssl.SSLContext`` to present a given certificate
    (a fleet shares one with API-SSL), or ``True`` for a self-signed certificate made once
    per process.
    """

    def __init__(
        self,
        state: DeviceState,
        *,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool | ssl.SSLContext = False,
        options: RestOptions | None = None,
    ) -> None:
        self._state = state
        self._faults = faults if faults is not None else Faults()
        self._jobs = 0
        self._tls = tls is not False
        self._options = options or RestOptions()
        if isinstance(tls, ssl.SSLContext):
            context: ssl.SSLContext | None = tls
        else:
            context = _shared_ssl_context() if tls else None
        self._http = HttpServer(self.handle, host=host, port=port, ssl_context=context)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._http.port

    async def start(self) -> None:
        """Start listening; a reboot of the device drops open connections."""
        await self._http.start()
        self._state.add_reboot_listener(self._http.drop_connections)

    async def stop(self) -> None:
        """Stop listening and drop open connections."""
        self._state.remove_reboot_listener(self._http.drop_connections)
        await self._http.stop()

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Handle one HTTP request and return the response."""
        path, _, query = request.target.partition("?")
        path = unquote(path, errors="surrogateescape")
        if path != "/rest" and not path.startswith("/rest/"):
            return _webfig(path)
        if not self._serves_rest():
            return HttpResponse(404, b"Not Found", content_type="text/plain")
        session = self._authenticate(request.headers.get("authorization", ""))
        if session is None:
            return self._error(401)
        await self._apply_delay_faults()
        try:
            return await self._dispatch(request.method, path[len("/rest") :], query, request.body, session)
        except rest_json.JsonBodyError as error:
            return self._error(400, str(error))

    async def _apply_delay_faults(self) -> None:
        """Delay the reply by the device's latency fault, or forever while the hang fault is on."""
        if self._faults.hang:
            # A hung device accepts the request and never replies; the client's timeout ends it.
            await asyncio.Event().wait()
        delay = self._faults.reply_delay()
        if delay > 0:
            await asyncio.sleep(delay)

    def _serves_rest(self) -> bool:
        if not self._state.version_at_least(7, 1):
            return False
        return self._tls or self._state.version_at_least(7, 9)

    def _authenticate(self, header: str) -> Session | None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        name, separator, password = decoded.decode("utf-8", "surrogateescape").partition(":")
        if not separator or self._faults.refuse_logins:
            return None
        try:
            user = self._state.authenticate(name, password)
        except UnicodeEncodeError:
            # Credentials that are not UTF-8 cannot match a stored password.
            return None
        if user is None or "rest-api" not in user.policies:
            return None
        return Session(state=self._state, user=user, transport="rest", faults=self._faults)

    async def _dispatch(
        self, method: str, path: str, query: str, body: bytes, session: Session
    ) -> HttpResponse:
        path = path.rstrip("/")
        if method == "GET":
            return self._get(session, path, query)
        if method == "PUT":
            return self._put(session, path, rest_json.decode_body(body))
        if method == "PATCH":
            return self._patch(session, path, rest_json.decode_body(body))
        if method == "DELETE":
            return self._delete(session, path)
        if method == "POST":
            return await self._post(session, path, body)
        return self._error(400, f"method {method} is not supported, use GET, PUT, PATCH, DELETE or POST")

    # -- verbs ------------------------------------------------------------------

    def _get(self, session: Session, path: str, query: str) -> HttpResponse:
        filters = parse_qsl(query, keep_blank_values=True, errors="surrogateescape")
        attributes = {name: value for name, value in filters if name == ".proplist"}
        queries = [f"?={name}={value}" for name, value in filters if name != ".proplist"]
        if self._is_menu(path):
            result = self._run(session, f"{path}/print", attributes, queries)
            if result.traps:
                return self._trap(result)
            if self._options.singleton_as_object and self._is_singleton(path):
                return self._json(result.rows[0] if result.rows else {})
            return self._json(result.rows)
        menu, key = _split_item(path)
        if not self._is_menu(menu):
            return self._unknown_path(path)
        return self._item_response(session, menu, key, attributes)

    def _put(self, session: Session, path: str, attributes: dict[str, str]) -> HttpResponse:
        if not self._is_menu(path):
            return self._unknown_path(path)
        result = self._run(session, f"{path}/add", attributes)
        if result.traps:
            return self._trap(result)
        created = self._item_response(session, path, result.done.get("ret", ""), {})
        if created.status == 200:
            created.status = self._options.created_status
        return created

    def _patch(self, session: Session, path: str, attributes: dict[str, str]) -> HttpResponse:
        if self._is_menu(path):
            # Singleton menus (`/ip/dns`) have no item to name, so set applies to the menu.
            result = self._run(session, f"{path}/set", attributes)
            return self._trap(result) if result.traps else self._get(session, path, "")
        menu, key = _split_item(path)
        if not self._is_menu(menu):
            return self._unknown_path(path)
        item = self._find(session, menu, key, {})
        if not isinstance(item, dict):
            return item
        result = self._run(session, f"{menu}/set", {**attributes, ".id": item[".id"]})
        if result.traps:
            return self._trap(result)
        return self._item_response(session, menu, item[".id"], {})

    def _delete(self, session: Session, path: str) -> HttpResponse:
        menu, key = _split_item(path)
        if not self._is_menu(menu):
            return self._unknown_path(path)
        item = self._find(session, menu, key, {})
        if not isinstance(item, dict):
            return item
        result = self._run(session, f"{menu}/remove", {".id": item[".id"]})
        if result.traps:
            return self._trap(result)
        return HttpResponse(self._options.deleted_status, b"", content_type=None)

    async def _post(self, session: Session, path: str, body: bytes) -> HttpResponse:
        attributes: dict[str, str] = {}
        queries: list[str] = []
        for name, value in rest_json.decode_object(body).items():
            if name == ".proplist":
                attributes[".proplist"] = ",".join(rest_json.decode_list(value))
            elif name == ".query":
                queries = [f"?{word}" for word in rest_json.decode_list(value)]
            else:
                attributes[name] = rest_json.attribute_text(name, value)
        if path == "/execute":
            return self._execute_script(session, attributes)
        if _is_streaming(path):
            if not streaming.runs_bounded(path, attributes):
                return await self._hold_until_timeout()
            if path in streaming.STREAMING_HANDLERS:
                return await self._bounded_stream(session, path, attributes)
        result = self._run(session, path, attributes, queries)
        if result.traps:
            return self._trap(result)
        if result.after_reply is not None:
            asyncio.get_running_loop().call_soon(result.after_reply)
        if result.rows:
            return self._json(result.rows)
        if result.done:
            return self._json(result.done)
        return self._json([])

    def _execute_script(self, session: Session, attributes: dict[str, str]) -> HttpResponse:
        run = Console(session).run_script(attributes.get("script", ""))
        for action in run.after_reply:
            asyncio.get_running_loop().call_soon(action)
        if "as-string" not in attributes:
            # Without as-string RouterOS starts a background job and returns its id. The
            # simulator runs the script at once and returns an id of the same shape.
            self._jobs += 1
            return self._json({"ret": f"*{0xB000 + self._jobs:X}"})
        # With as-string RouterOS returns 200 even when the script fails, with the error
        # text as the output.
        output = run.error if run.error is not None else run.output.replace("\n", "\r\n")
        return self._json({"ret": output})

    async def _bounded_stream(self, session: Session, path: str, attributes: dict[str, str]) -> HttpResponse:
        """Run ``once``/``duration``/``count`` streaming commands, taking the duration's time."""
        seconds = 0.0
        if "duration" in attributes:
            try:
                seconds = streaming.parse_duration(attributes["duration"])
            except ValueError as error:
                return self._error(400, str(error))
        if seconds >= self._options.session_timeout:
            return await self._hold_until_timeout()
        await asyncio.sleep(seconds)
        result = streaming.execute_streaming(session, path, attributes)
        if result.traps:
            return self._trap(result)
        return self._json(result.rows)

    async def _hold_until_timeout(self) -> HttpResponse:
        await asyncio.sleep(self._options.session_timeout)
        return self._error(400, "Session closed")

    # -- helpers ----------------------------------------------------------------

    def _run(
        self,
        session: Session,
        command: str,
        attributes: Mapping[str, str] | None = None,
        queries: list[str] | None = None,
    ) -> Result:
        return execute(session, command, attributes or {}, queries or [])

    def _is_menu(self, path: str) -> bool:
        from simulator import commands

        if not path:
            return False
        return self._state.has_menu(path) or f"{path}/print" in commands.SPECIAL_COMMANDS

    def _is_singleton(self, path: str) -> bool:
        from simulator import commands

        table = self._state.table(path)
        if table is not None:
            return table.singleton
        if schemas.schema_for(path).singleton:
            return True
        # Computed menus such as /system/resource print exactly one item without an id.
        return f"{path}/print" in commands.SPECIAL_COMMANDS

    def _find(
        self, session: Session, menu: str, key: str, attributes: Mapping[str, str]
    ) -> dict[str, str] | HttpResponse:
        match = f"?=.id={key}" if key.startswith("*") else f"?=name={key}"
        wanted = dict(attributes)
        proplist = wanted.get(".proplist")
        if proplist is not None and ".id" not in proplist.split(","):
            wanted[".proplist"] = f"{proplist},.id"
        result = self._run(session, f"{menu}/print", wanted, [match])
        if result.traps:
            return self._trap(result)
        if not result.rows:
            return self._error(404)
        return result.rows[0]

    def _item_response(
        self, session: Session, menu: str, key: str, attributes: Mapping[str, str]
    ) -> HttpResponse:
        item = self._find(session, menu, key, attributes)
        if not isinstance(item, dict):
            return item
        proplist = attributes.get(".proplist")
        if proplist is not None and ".id" not in proplist.split(","):
            item = {name: value for name, value in item.items() if name != ".id"}
        return self._json(item)

    def _trap(self, result: Result) -> HttpResponse:
        message = result.traps[0].message
        if message.startswith(_NOT_FOUND_TRAPS):
            return self._error(404)
        return self._error(400, message)

    def _unknown_path(self, path: str) -> HttpResponse:
        last = path.rsplit("/", 1)[-1] or path
        return self._error(400, f"no such command or directory ({last})")

    def _error(self, status: int, detail: str | None = None) -> HttpResponse:
        body: dict[str, object] = {}
        if detail is not None:
            body["detail"] = detail
        body["error"] = status
        body["message"] = _REASONS.get(status, "Error")
        headers = [("www-authenticate", 'Basic realm="REST API"')] if status == 401 else []
        return HttpResponse(status, rest_json.encode(body), headers=headers)

    def _json(self, value: object, status: int = 200) -> HttpResponse:
        raw = self._faults.rest_invalid_json
        return HttpResponse(status, rest_json.encode(value, raw_control_bytes=raw))


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    """Return one self-signed server context per process for servers given ``tls=True``."""
    return make_self_signed().server_context()


def _split_item(path: str) -> tuple[str, str]:
    menu, _, key = path.rpartition("/")
    return menu, key


def _is_streaming(path: str) -> bool:
    return path in STREAMING_PATHS or path.rsplit("/", 1)[-1] in STREAMING_COMMANDS


def _webfig(path: str) -> HttpResponse:
    if path in ("/", "/webfig", "/webfig/"):
        page = b"<html><head><title>RouterOS router configuration page</title></head></html>"
        return HttpResponse(200, page, content_type="text/html")
    return HttpResponse(404, b"Not Found", content_type="text/plain")
