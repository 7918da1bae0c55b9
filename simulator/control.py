"""A loopback HTTP endpoint that drives a running fleet from another process.

Routes (JSON in and out):

=======  =================================  ==============================================
GET      ``/devices``                       endpoints of every device
GET      ``/devices/{name}``                one device's endpoint
GET      ``/devices/{name}/faults``         current faults
POST     ``/devices/{name}/faults``         change faults (see :meth:`Faults.apply`)
DELETE   ``/devices/{name}/faults``         switch all faults off
GET      ``/devices/{name}/state?path=P``   items of menu ``P`` as ``print`` shows them
POST     ``/devices/{name}/restart``        restart; body ``{"keep_state": false}`` loses config
=======  =================================  ==============================================
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs, unquote

from simulator.executor import visible_rows
from simulator.fleet import Fleet
from simulator.http import HttpRequest, HttpResponse, HttpServer

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ControlServer:
    """Serve the control routes of ``fleet`` on a loopback port."""

    def __init__(self, fleet: Fleet, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"control endpoint must listen on loopback, not {host!r}; use 127.0.0.1 or ::1")
        self.fleet = fleet
        self._http = HttpServer(self.handle, host=host, port=port)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._http.port

    async def start(self) -> None:
        """Start listening."""
        await self._http.start()

    async def stop(self) -> None:
        """Stop listening."""
        await self._http.stop()

    async def handle(self, request: HttpRequest) -> HttpResponse:
        """Route one request; errors come back as ``{"error": "..."}`` with a 4xx status."""
        path, _, query = request.target.partition("?")
        parts = [unquote(part) for part in path.split("/") if part]
        try:
            return await self._route(request.method, parts, parse_qs(query), request.body)
        except KeyError as error:
            return _json({"error": str(error.args[0]) if error.args else "not found"}, 404)
        except (ValueError, TypeError) as error:
            return _json({"error": str(error)}, 400)

    async def _route(self, method: str, parts: list[str], query: dict[str, list[str]], body: bytes) -> HttpResponse:
        if parts == ["devices"] and method == "GET":
            return _json(self.fleet.endpoints())
        if len(parts) < 2 or parts[0] != "devices":
            raise KeyError(f"no route for /{'/'.join(parts)}; see the routes under /devices")
        device = self.fleet.device(parts[1])
        action = parts[2] if len(parts) > 2 else ""
        if action == "" and method == "GET":
            return _json(device.endpoint(self.fleet.host, self.fleet.credentials()))
        if action == "faults":
            if method == "POST":
                device.faults.apply(_body(body))
            elif method == "DELETE":
                device.faults.clear()
            return _json(device.faults.to_dict())
        if action == "state" and method == "GET":
            menu = query.get("path", [""])[0]
            if not device.state.has_menu(menu):
                raise KeyError(f"device {device.name} has no menu {menu!r}")
            return _json(visible_rows(device.state, menu))
        if action == "restart" and method == "POST":
            keep = bool(_body(body).get("keep_state", True))
            await self.fleet.restart(device.name, keep_state=keep)
            return _json(device.endpoint(self.fleet.host, self.fleet.credentials()))
        raise KeyError(f"no route for {method} /{'/'.join(parts)}")


def _body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except json.JSONDecodeError as error:
        raise ValueError(f"request body is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError("request body must be a JSON object")
    return data


def _json(value: Any, status: int = 200) -> HttpResponse:
    # Raw non-UTF-8 bytes in state are kept as surrogate escapes; show them as U+FFFD here.
    text = json.dumps(value, ensure_ascii=False).encode("utf-8", "replace")
    return HttpResponse(status, text)
