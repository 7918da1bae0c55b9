"""One scenario table, four unmodified clients, two RouterOS generations.

The same scenarios run through librouteros (sync and async) on the binary API, httpx on REST
and asyncssh on the CLI, against a simulated RouterOS 7.19 and 6.49. Each client checks what
that interface of a real router returns: API replies use ``true``/``false``, the CLI prints
``yes``/``no`` flags, REST returns every value as a string, and 6.49 serves no REST at all.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import asyncssh
import httpx
import librouteros
import pytest
from librouteros.exceptions import MultiTrapError, TrapError
from librouteros.query import Key

from simulator.background import BackgroundFleet
from simulator.fleet import Fleet

VERSIONS = ["7.19", "6.49"]
CLIENTS = ["librouteros-sync", "librouteros-async", "httpx-rest", "asyncssh-cli"]


@pytest.fixture(scope="module", params=VERSIONS)
def router(request) -> Iterator[tuple[str, dict[str, Any], BackgroundFleet]]:
    fleet = Fleet(1, version=request.param)
    with BackgroundFleet(fleet) as background:
        yield request.param, background.run(_endpoint(fleet)), background


async def _endpoint(fleet: Fleet) -> dict[str, Any]:
    return fleet.endpoints()[0]


def _host_port(endpoint: dict[str, Any], transport: str) -> tuple[str, int]:
    host, _, port = endpoint[transport].rpartition(":")
    return host, int(port)


class Client:
    """What each scenario needs from an interface: log in, read, add, and fail on bad input."""

    def __init__(self, endpoint: dict[str, Any]) -> None:
        self.endpoint = endpoint

    def login_fails(self) -> str: ...
    def identity(self) -> str: ...
    def add_address(self, address: str, comment: str) -> None: ...
    def address(self, address: str) -> dict[str, str]: ...
    def unknown_menu_error(self) -> str: ...


class LibrouterosSync(Client):
    def _connect(self, password: str | None = None):
        host, port = _host_port(self.endpoint, "api")
        return librouteros.connect(host=host, port=port, username=self.endpoint["username"],
                                   password=password or self.endpoint["password"])

    def login_fails(self) -> str:
        with pytest.raises(TrapError) as caught:
            self._connect("wrong-password")
        return str(caught.value)

    def identity(self) -> str:
        api = self._connect()
        try:
            return next(iter(api.path("system", "identity")))["name"]
        finally:
            api.close()

    def add_address(self, address: str, comment: str) -> None:
        api = self._connect()
        try:
            api.path("ip", "address").add(address=address, interface="ether1", comment=comment)
        finally:
            api.close()

    def address(self, address: str) -> dict[str, str]:
        api = self._connect()
        try:
            rows = list(api.rawCmd("/ip/address/print", f"?=address={address}"))
            return {k: str(v) for k, v in rows[0].items()}
        finally:
            api.close()

    def unknown_menu_error(self) -> str:
        api = self._connect()
        try:
            with pytest.raises(MultiTrapError) as caught:
                list(api.path("ip", "adress"))
            return str(caught.value)
        finally:
            api.close()


class LibrouterosAsync(Client):
    async def _connect(self, password: str | None = None):
        host, port = _host_port(self.endpoint, "api")
        return await librouteros.async_connect(host=host, port=port, username=self.endpoint["username"],
                                               password=password or self.endpoint["password"])

    def login_fails(self) -> str:
        async def attempt() -> str:
            with pytest.raises(TrapError) as caught:
                await self._connect("wrong-password")
            return str(caught.value)

        return asyncio.run(attempt())

    def identity(self) -> str:
        async def read() -> str:
            api = await self._connect()
            try:
                rows = [row async for row in api.path("system", "identity")]
                return rows[0]["name"]
            finally:
                await api.close()

        return asyncio.run(read())

    def add_address(self, address: str, comment: str) -> None:
        async def add() -> None:
            api = await self._connect()
            try:
                await api.path("ip", "address").add(address=address, interface="ether1", comment=comment)
            finally:
                await api.close()

        asyncio.run(add())

    def address(self, address: str) -> dict[str, str]:
        async def read() -> dict[str, str]:
            api = await self._connect()
            try:
                query = api.path("ip", "address").select(Key(".id"), Key("address"), Key("comment"),
                                                          Key("disabled"))
                rows = [row async for row in query.where(Key("address") == address)]
                return {k: str(v) for k, v in rows[0].items()}
            finally:
                await api.close()

        return asyncio.run(read())

    def unknown_menu_error(self) -> str:
        async def read() -> str:
            api = await self._connect()
            try:
                with pytest.raises(MultiTrapError) as caught:
                    [row async for row in api.path("ip", "adress")]
                return str(caught.value)
            finally:
                await api.close()

        return asyncio.run(read())


class HttpxRest(Client):
    def _client(self, password: str | None = None) -> httpx.Client:
        host, port = _host_port(self.endpoint, "rest")
        return httpx.Client(base_url=f"http://{host}:{port}/rest", timeout=10,
                            auth=(self.endpoint["username"], password or self.endpoint["password"]))

    def login_fails(self) -> str:
        with self._client("wrong-password") as http:
            response = http.get("/system/identity")
        assert response.status_code == 401
        return response.text

    def identity(self) -> str:
        with self._client() as http:
            body = http.get("/system/identity").json()
        return (body[0] if isinstance(body, list) else body)["name"]

    def add_address(self, address: str, comment: str) -> None:
        with self._client() as http:
            response = http.put("/ip/address", json={"address": address, "interface": "ether1",
                                                     "comment": comment})
        assert response.status_code in (200, 201), response.text

    def address(self, address: str) -> dict[str, str]:
        with self._client() as http:
            rows = http.get("/ip/address", params={"address": address}).json()
        return rows[0]

    def unknown_menu_error(self) -> str:
        with self._client() as http:
            response = http.get("/ip/adress")
        assert response.status_code in (400, 404)
        return response.text


class AsyncsshCli(Client):
    async def _run(self, command: str, password: str | None = None) -> str:
        host, port = _host_port(self.endpoint, "ssh")
        async with asyncssh.connect(host, port=port, username=self.endpoint["username"] + "+cet512w",
                                    password=password or self.endpoint["password"],
                                    known_hosts=None) as ssh:
            result = await ssh.run(command)
            return result.stdout.decode() if isinstance(result.stdout, bytes) else result.stdout

    def login_fails(self) -> str:
        with pytest.raises(asyncssh.PermissionDenied) as caught:
            asyncio.run(self._run("/system identity print", "wrong-password"))
        return str(caught.value)

    def identity(self) -> str:
        output = asyncio.run(self._run("/system identity print"))
        return re.search(r"name:\s*(\S+)", output).group(1)

    def add_address(self, address: str, comment: str) -> None:
        output = asyncio.run(self._run(f"/ip address add address={address} interface=ether1 comment={comment}"))
        assert output.strip() == "", output

    def address(self, address: str) -> dict[str, str]:
        output = asyncio.run(self._run(f"/ip address print terse where address={address}"))
        line = output.strip().splitlines()[0]
        return dict(re.findall(r"([\w.-]+)=(\S*)", line)) | {"_flags": line.split("address=")[0]}

    def unknown_menu_error(self) -> str:
        return asyncio.run(self._run("/ip adress print"))


ADAPTERS = {"librouteros-sync": LibrouterosSync, "librouteros-async": LibrouterosAsync,
            "httpx-rest": HttpxRest, "asyncssh-cli": AsyncsshCli}


@pytest.fixture(params=CLIENTS)
def client(request, router) -> tuple[str, str, Client | None]:
    version, endpoint, _background = router
    if request.param == "httpx-rest" and version.startswith("6."):
        # RouterOS 6 has no REST API; the scenarios check that instead.
        return version, request.param, None
    return version, request.param, ADAPTERS[request.param](endpoint)


def test_conformance_login_failure_text(client, router):
    """A wrong password is refused with the interface's real error."""
    version, name, adapter = client
    if adapter is None:
        _assert_no_rest(router)
        return
    text = adapter.login_fails()
    if name.startswith("librouteros"):
        assert "invalid user name or password (6)" in text
    if name == "httpx-rest":
        assert '"error":401' in text.replace(" ", "")


def test_conformance_reads_identity(client, router):
    """Every interface reports the same identity of the same device."""
    version, name, adapter = client
    if adapter is None:
        _assert_no_rest(router)
        return
    assert adapter.identity() == "MikroTik"


def test_conformance_add_then_read_back(client, router):
    """An address added through one interface reads back with its values as that interface shows them."""
    version, name, adapter = client
    if adapter is None:
        _assert_no_rest(router)
        return
    octet = CLIENTS.index(name) + 10 * VERSIONS.index(version) + 1
    address = f"10.199.{octet}.1/24"
    comment = "0000"  # a leading-zero string must stay a string everywhere
    adapter.add_address(address, comment)
    row = adapter.address(address)
    assert row["address"] == address
    assert row["comment"] == comment
    if name == "httpx-rest":
        assert row["disabled"] == "false"
    if name.startswith("librouteros"):
        assert row["disabled"] == "False"  # librouteros casts the wire's "false" to a bool
    if name == "asyncssh-cli":
        assert "X" not in row["_flags"]


def test_conformance_unknown_menu_error(client, router):
    """A misspelt menu fails with that interface's real error text."""
    version, name, adapter = client
    if adapter is None:
        _assert_no_rest(router)
        return
    text = adapter.unknown_menu_error()
    if name.startswith("librouteros"):
        assert "no such command or directory (adress)" in text
        assert "no such command prefix" in text
    if name == "asyncssh-cli":
        assert "bad command name adress" in text
    if name == "httpx-rest":
        assert "no such command" in text or "Not Found" in text


def _assert_no_rest(router) -> None:
    """Check that on 6.49 the REST port is absent or returns 404 under /rest."""
    version, endpoint, _background = router
    assert version.startswith("6.")
    if "rest" not in endpoint:
        return
    host, port = _host_port(endpoint, "rest")
    response = httpx.get(f"http://{host}:{port}/rest/system/identity", timeout=5,
                         auth=(endpoint["username"], endpoint["password"]))
    assert response.status_code == 404


def test_conformance_scenarios_cover_every_client():
    """Every client in the table has an adapter, so no client silently drops out."""
    assert set(ADAPTERS) == set(CLIENTS)
