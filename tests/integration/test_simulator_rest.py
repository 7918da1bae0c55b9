"""The simulator's REST API against httpx clients (async and sync) over HTTP and HTTPS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from urllib.parse import quote_from_bytes

import httpx
import pytest

from simulator.faults import Faults
from simulator.rest import RestOptions, RestServer
from simulator.state import DeviceState
from simulator.tls import make_self_signed

PASSWORD = "lab-secret"
TIMEOUT = 10.0
CP1251_COMMENT = "Рабочий".encode("cp1251").decode("utf-8", "surrogateescape")


def make_device(version: str = "7.19") -> DeviceState:
    """Build a device with an admin, a read-only user and a user without the rest-api policy."""
    state = DeviceState.factory(version, admin_password=PASSWORD)
    state.create_item("/user/group", {"name": "no-rest", "policy": "read,write,api,ssh,test"})
    state.add_user("reader", "read", PASSWORD)
    state.add_user("apionly", "no-rest", PASSWORD)
    state.create_item(
        "/ip/address",
        {"address": "192.0.2.1/24", "interface": "ether1", "comment": "uplink", "disabled": "false"},
    )
    state.create_item("/ip/address", {"address": "198.51.100.1/24", "interface": "ether2", "disabled": "true"})
    return state


@pytest.fixture
async def device() -> DeviceState:
    return make_device()


@pytest.fixture
async def faults() -> Faults:
    return Faults()


@pytest.fixture
async def rest(device: DeviceState, faults: Faults) -> AsyncIterator[RestServer]:
    server = RestServer(device, faults=faults)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(rest: RestServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{rest.port}/rest", auth=("admin", PASSWORD), timeout=TIMEOUT
    ) as http:
        yield http


def ids_of(rows: list[dict[str, str]]) -> list[str]:
    return [row[".id"] for row in rows]


async def test_rest_get_lists_items_with_string_values(client: httpx.AsyncClient) -> None:
    """GET on a menu returns a JSON array whose values are all strings."""
    response = await client.get("/ip/address")

    assert response.status_code == 200
    rows = response.json()
    assert [row["address"] for row in rows] == ["192.0.2.1/24", "198.51.100.1/24"]
    assert rows[1]["disabled"] == "true"
    for row in rows:
        assert all(isinstance(value, str) for value in row.values())


async def test_rest_get_item_by_id_or_name(client: httpx.AsyncClient) -> None:
    """GET on an item path accepts a ``*HEX`` id and, in named menus, a name."""
    listing = (await client.get("/ip/address")).json()
    first_id = listing[0][".id"]

    by_id = await client.get(f"/ip/address/{first_id}")
    by_name = await client.get("/interface/ether1")
    missing = await client.get("/ip/address/*FFFF")

    assert by_id.status_code == 200
    assert by_id.json()["address"] == "192.0.2.1/24"
    assert by_name.status_code == 200
    assert by_name.json()["name"] == "ether1"
    assert by_name.json()["type"] == "ether"
    assert missing.status_code == 404
    assert missing.json() == {"error": 404, "message": "Not Found"}


async def test_rest_get_equality_filters(client: httpx.AsyncClient) -> None:
    """Query-string parameters filter by equality, combined with AND."""
    only_ether2 = await client.get("/ip/address", params={"interface": "ether2"})
    both = await client.get("/ip/address", params={"interface": "ether1", "disabled": "true"})

    assert [row["address"] for row in only_ether2.json()] == ["198.51.100.1/24"]
    assert both.json() == []


async def test_rest_get_proplist_omits_id(client: httpx.AsyncClient) -> None:
    """``.proplist`` limits the properties and leaves ``.id`` out unless it is listed."""
    response = await client.get("/ip/address", params={".proplist": "address,disabled"})
    with_id = await client.get("/ip/address", params={".proplist": ".id,address"})

    assert response.json() == [
        {"address": "192.0.2.1/24", "disabled": "false"},
        {"address": "198.51.100.1/24", "disabled": "true"},
    ]
    assert all(set(row) == {".id", "address"} for row in with_id.json())


async def test_rest_get_singleton_menu_is_object(client: httpx.AsyncClient) -> None:
    """Singleton menus (identity, resource) come back as one JSON object."""
    identity = await client.get("/system/identity")
    resource = await client.get("/system/resource")

    assert identity.json() == {"name": "MikroTik"}
    assert resource.json()["version"].startswith("7.19")
    assert isinstance(resource.json()["cpu-count"], str)


async def test_rest_put_returns_created_object(client: httpx.AsyncClient) -> None:
    """PUT adds an item and returns the full object, ``.id`` included."""
    response = await client.put(
        "/ip/address", json={"address": "203.0.113.9/24", "interface": "ether3", "comment": "lab"}
    )

    assert response.status_code == 201
    created = response.json()
    assert created[".id"].startswith("*")
    assert created["network"] == "203.0.113.0"
    assert created["disabled"] == "false"
    listed = (await client.get(f"/ip/address/{created['.id']}")).json()
    assert listed == created


async def test_rest_put_accepts_json_numbers_and_booleans(client: httpx.AsyncClient) -> None:
    """JSON numbers and booleans in a body are stored as their string forms."""
    response = await client.put(
        "/interface/vlan", json={"name": "vlan70", "vlan-id": 70, "interface": "ether1", "disabled": True}
    )

    assert response.status_code == 201
    assert response.json()["vlan-id"] == "70"
    assert response.json()["disabled"] == "true"


async def test_rest_patch_returns_updated_object(client: httpx.AsyncClient) -> None:
    """PATCH sets properties and returns the whole updated object."""
    first_id = (await client.get("/ip/address")).json()[0][".id"]

    response = await client.patch(f"/ip/address/{first_id}", json={"comment": "core uplink", "disabled": "yes"})

    assert response.status_code == 200
    assert response.json()[".id"] == first_id
    assert response.json()["comment"] == "core uplink"
    assert response.json()["disabled"] == "true"
    assert response.json()["address"] == "192.0.2.1/24"


async def test_rest_patch_unsets_with_bang_key(client: httpx.AsyncClient) -> None:
    """A ``!name`` key in a PATCH body removes the property from the item."""
    first_id = (await client.get("/ip/address")).json()[0][".id"]

    response = await client.patch(f"/ip/address/{first_id}", json={"!comment": ""})

    assert response.status_code == 200
    assert "comment" not in response.json()


async def test_rest_delete_then_delete_again(client: httpx.AsyncClient) -> None:
    """DELETE returns an empty body; a second DELETE of the same id is 404."""
    first_id = (await client.get("/ip/address")).json()[0][".id"]

    removed = await client.delete(f"/ip/address/{first_id}")
    again = await client.delete(f"/ip/address/{first_id}")

    assert removed.status_code == 204
    assert removed.content == b""
    assert again.status_code == 404
    assert again.json() == {"error": 404, "message": "Not Found"}
    assert first_id not in ids_of((await client.get("/ip/address")).json())


async def test_rest_post_print_with_proplist_and_query(client: httpx.AsyncClient) -> None:
    """POST ``print`` takes ``.proplist`` (string or list) and ``.query`` words with ``#`` ops."""
    either = await client.post(
        "/ip/address/print",
        json={".proplist": ["address"], ".query": ["interface=ether1", "interface=ether2", "#|"]},
    )
    negated = await client.post(
        "/ip/address/print", json={".proplist": "address,interface", ".query": ["interface=ether1", "#!"]}
    )

    assert either.status_code == 200
    assert either.json() == [{"address": "192.0.2.1/24"}, {"address": "198.51.100.1/24"}]
    assert negated.json() == [{"address": "198.51.100.1/24", "interface": "ether2"}]


async def test_rest_post_singleton_set(client: httpx.AsyncClient) -> None:
    """POST ``…/set`` on a singleton menu changes it and returns an empty list."""
    response = await client.post("/system/identity/set", json={"name": "edge-7"})

    assert response.status_code == 200
    assert response.json() == []
    assert (await client.get("/system/identity")).json() == {"name": "edge-7"}


async def test_rest_post_add_returns_ret(client: httpx.AsyncClient) -> None:
    """POST ``…/add`` returns the ``!done`` data as an object holding the new id."""
    response = await client.post("/ip/firewall/address-list/add", json={"list": "mgmt", "address": "192.0.2.50"})

    assert response.status_code == 200
    assert response.json()["ret"].startswith("*")


async def test_rest_execute_returns_200_on_failure(client: httpx.AsyncClient) -> None:
    """``/execute`` with ``as-string`` is 200 even when the script fails, with the error as output."""
    failing = await client.post(
        "/execute", json={"script": "/ip address add address=10.9.9.9/24 interface=nope", "as-string": ""}
    )
    printing = await client.post("/execute", json={"script": ':put "hello"', "as-string": ""})
    background = await client.post("/execute", json={"script": "/system identity set name=from-job"})

    assert failing.status_code == 200
    assert failing.json() == {
        "ret": "input does not match any value of interface (/ip/address/add (interface); line 1)"
    }
    assert printing.json() == {"ret": "hello\r\n"}
    assert background.status_code == 200
    assert background.json()["ret"].startswith("*")
    assert (await client.get("/system/identity")).json() == {"name": "from-job"}


async def test_rest_export_returns_nothing_but_writes_file(client: httpx.AsyncClient) -> None:
    """POST ``/export`` returns an empty reply like the console API; ``file=`` writes an .rsc."""
    plain = await client.post("/export", json={})
    to_file = await client.post("/export", json={"file": "nightly"})

    assert plain.status_code == 200
    assert plain.json() == []
    assert to_file.status_code == 200
    files = (await client.get("/file")).json()
    assert "nightly.rsc" in [item["name"] for item in files]


async def test_rest_error_bodies(client: httpx.AsyncClient) -> None:
    """Failed commands return 400 with ``detail``, ``error`` and ``message`` in RouterOS order."""
    unknown_parameter = await client.put(
        "/ip/address", json={"address": "10.1.1.1/24", "interface": "ether1", "vrf": "x"}
    )
    duplicate = await client.put("/ip/address", json={"address": "192.0.2.1/24", "interface": "ether1"})
    bad_reference = await client.put("/ip/address", json={"address": "10.1.1.1/24", "interface": "nope"})
    unknown_path = await client.get("/ip/nonsense")
    bad_json = await client.put("/ip/address", content=b"{not json")

    assert unknown_parameter.status_code == 400
    assert unknown_parameter.content == (
        b'{"detail":"unknown parameter vrf","error":400,"message":"Bad Request"}'
    )
    assert duplicate.json()["detail"] == "failure: already have such address"
    assert bad_reference.json()["detail"] == "input does not match any value of interface"
    assert unknown_path.status_code == 400
    assert unknown_path.json()["detail"] == "no such command or directory (nonsense)"
    assert bad_json.status_code == 400
    assert "invalid JSON body" in bad_json.json()["detail"]


async def test_rest_rejects_missing_or_wrong_credentials(rest: RestServer) -> None:
    """Requests without Basic auth, with a wrong password or without rest-api get 401."""
    base = f"http://127.0.0.1:{rest.port}/rest/ip/address"
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        anonymous = await http.get(base)
        wrong = await http.get(base, auth=("admin", "not-it"))
        unknown_user = await http.get(base, auth=("ghost", PASSWORD))
        no_policy = await http.get(base, auth=("apionly", PASSWORD))
        garbage = await http.get(base, headers={"Authorization": "Basic %%%"})
        webfig = await http.get(f"http://127.0.0.1:{rest.port}/")

    for response in (anonymous, wrong, unknown_user, no_policy, garbage):
        assert response.status_code == 401
        assert response.json() == {"error": 401, "message": "Unauthorized"}
        assert response.headers["www-authenticate"].startswith("Basic")
    assert webfig.status_code == 200


async def test_rest_read_only_user_cannot_write(rest: RestServer) -> None:
    """A user without the write policy can read but gets ``not enough permissions (9)`` on writes."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{rest.port}/rest", auth=("reader", PASSWORD), timeout=TIMEOUT
    ) as http:
        listing = await http.get("/ip/address")
        added = await http.put("/ip/address", json={"address": "10.2.2.2/24", "interface": "ether1"})
        removed = await http.delete(f"/ip/address/{listing.json()[0]['.id']}")

    assert listing.status_code == 200
    assert added.status_code == 400
    assert added.json()["detail"] == "not enough permissions (9)"
    assert removed.json()["detail"] == "not enough permissions (9)"


async def test_rest_streaming_command_times_out(device: DeviceState) -> None:
    """A streaming command without ``once``/``duration`` ends with 400 ``Session closed``."""
    server = RestServer(device, options=RestOptions(session_timeout=0.2))
    await server.start()
    try:
        async with httpx.AsyncClient(auth=("admin", PASSWORD), timeout=TIMEOUT) as http:
            response = await http.post(
                f"http://127.0.0.1:{server.port}/rest/interface/monitor-traffic", json={"interface": "ether1"}
            )
    finally:
        await server.stop()

    assert response.status_code == 400
    assert response.content == b'{"detail":"Session closed","error":400,"message":"Bad Request"}'


async def test_rest_once_false_still_streams(device: DeviceState) -> None:
    """``once="false"`` does not end a streaming command, so it runs into the timeout too."""
    server = RestServer(device, options=RestOptions(session_timeout=0.2))
    await server.start()
    try:
        async with httpx.AsyncClient(auth=("admin", PASSWORD), timeout=TIMEOUT) as http:
            response = await http.post(
                f"http://127.0.0.1:{server.port}/rest/interface/monitor-traffic",
                json={"interface": "ether1", "once": "false"},
            )
    finally:
        await server.stop()

    assert response.status_code == 400
    assert response.json()["detail"] == "Session closed"


async def test_rest_invalid_json_fault(client: httpx.AsyncClient, device: DeviceState, faults: Faults) -> None:
    """With the fault on, control bytes go into JSON strings unescaped and the body is invalid."""
    device.create_item("/ip/dhcp-server/lease", {"address": "192.0.2.77", "host-name": "cam\x1bera"})

    faults.rest_invalid_json = False
    escaped = await client.get("/ip/dhcp-server/lease")
    faults.rest_invalid_json = True
    raw = await client.get("/ip/dhcp-server/lease")

    assert escaped.json()[0]["host-name"] == "cam\x1bera"
    assert b"cam\x1bera" in raw.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw.content)


async def test_rest_non_utf8_bytes_pass_raw(client: httpx.AsyncClient, device: DeviceState) -> None:
    """Comment bytes that are not UTF-8 (CP1251) reach the client unchanged."""
    device.create_item("/ip/firewall/address-list", {"list": "office", "address": "192.0.2.8", "comment": CP1251_COMMENT})

    response = await client.get("/ip/firewall/address-list")
    encoded = quote_from_bytes(CP1251_COMMENT.encode("utf-8", "surrogateescape"))
    filtered = await client.get(f"/ip/firewall/address-list?comment={encoded}")

    expected = CP1251_COMMENT.encode("utf-8", "surrogateescape")
    assert b'"comment":"' + expected + b'"' in response.content
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")
    assert b'"address":"192.0.2.8"' in filtered.content
    assert filtered.content.count(b'"address"') == 1


async def test_rest_hang_fault_never_answers(client: httpx.AsyncClient, faults: Faults) -> None:
    """A hung device accepts the request and never replies, so the client times out."""
    faults.hang = True

    with pytest.raises(httpx.ReadTimeout):
        await client.get("/system/identity", timeout=0.3)


async def test_rest_https_with_sync_client(device: DeviceState) -> None:
    """HTTPS with the self-signed certificate serves a synchronous httpx client."""
    server = RestServer(device, tls=True)
    await server.start()

    def fetch() -> httpx.Response:
        with httpx.Client(verify=False, auth=("admin", PASSWORD), timeout=TIMEOUT) as http:
            created = http.put(
                f"https://127.0.0.1:{server.port}/rest/ip/address",
                json={"address": "203.0.113.1/24", "interface": "ether4"},
            )
            created.raise_for_status()
            return http.get(f"https://127.0.0.1:{server.port}/rest/ip/address", params={"interface": "ether4"})

    try:
        response = await asyncio.wait_for(asyncio.to_thread(fetch), TIMEOUT)
    finally:
        await server.stop()

    assert response.status_code == 200
    assert [row["address"] for row in response.json()] == ["203.0.113.1/24"]


async def test_rest_served_only_where_supported() -> None:
    """RouterOS 6 has no REST; 7.1–7.8 serve it only over HTTPS."""
    servers = {
        "v6-http": RestServer(make_device("6.49.10")),
        "v6-https": RestServer(make_device("6.49.10"), tls=True),
        "v7.8-http": RestServer(make_device("7.8")),
        "v7.8-https": RestServer(make_device("7.8"), tls=True),
    }
    for server in servers.values():
        await server.start()
    statuses = {}
    try:
        async with httpx.AsyncClient(verify=False, auth=("admin", PASSWORD), timeout=TIMEOUT) as http:
            for name, server in servers.items():
                scheme = "https" if name.endswith("https") else "http"
                response = await http.get(f"{scheme}://127.0.0.1:{server.port}/rest/system/identity")
                statuses[name] = response.status_code
    finally:
        for server in servers.values():
            await server.stop()

    assert statuses == {"v6-http": 404, "v6-https": 404, "v7.8-http": 404, "v7.8-https": 200}


async def test_rest_keep_alive_serves_many_requests(client: httpx.AsyncClient) -> None:
    """One keep-alive connection carries several requests in a row."""
    statuses = [(await client.get("/system/identity")).status_code for _ in range(5)]

    assert statuses == [200] * 5


async def test_rest_https_presents_given_certificate(device: DeviceState) -> None:
    """An SSL context passed in (a fleet's shared certificate) is what HTTPS clients see."""
    material = make_self_signed()
    server = RestServer(device, tls=material.server_context())
    await server.start()
    try:
        client_context = ssl.create_default_context()
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", server.port, ssl=client_context), TIMEOUT
        )
        certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
    finally:
        await server.stop()

    assert hashlib.sha256(certificate).hexdigest() == material.fingerprint


async def test_rest_execute_runs_reboot_without_question(device: DeviceState) -> None:
    """Scripts never ask for confirmation: a reboot in ``/execute`` runs after the reply."""
    rebooted = asyncio.Event()
    device.add_reboot_listener(rebooted.set)
    rest = RestServer(device)
    await rest.start()
    try:
        async with httpx.AsyncClient(auth=("admin", PASSWORD), timeout=TIMEOUT) as http:
            response = await http.post(
                f"http://127.0.0.1:{rest.port}/rest/execute", json={"script": "/system reboot", "as-string": ""}
            )
        await asyncio.wait_for(rebooted.wait(), TIMEOUT)
    finally:
        await rest.stop()

    assert response.status_code == 200
    assert response.json() == {"ret": ""}


async def test_rest_garbage_request_gets_400(rest: RestServer, client: httpx.AsyncClient) -> None:
    """Bytes that are not HTTP get a 400 and the server keeps serving other clients."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", rest.port), TIMEOUT)
    writer.write(b"\x16\x03\x01\xff\xfe not http at all\r\n\r\n")
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    await writer.wait_closed()

    assert reply.startswith(b"HTTP/1.1 400 ")
    assert (await client.get("/system/identity")).status_code == 200


async def test_rest_head_and_unknown_methods(client: httpx.AsyncClient) -> None:
    """HEAD returns GET's status without a body; other unknown methods get a 400 error body."""
    head = await client.head("/system/identity")
    options = await client.options("/system/identity")

    assert head.status_code == 200
    assert head.content == b""
    assert options.status_code == 400
    assert "OPTIONS" in options.json()["detail"]


async def test_rest_refuse_logins_fault(client: httpx.AsyncClient, faults: Faults) -> None:
    """With logins refused, correct credentials get 401 until the fault is cleared."""
    faults.refuse_logins = True
    refused = await client.get("/system/identity")
    faults.refuse_logins = False
    accepted = await client.get("/system/identity")

    assert refused.status_code == 401
    assert accepted.status_code == 200


async def test_rest_raw_bytes_in_body_and_credentials(rest: RestServer, client: httpx.AsyncClient) -> None:
    """CP1251 bytes in a JSON body are stored raw; non-UTF-8 credentials get 401, not 500."""
    raw = "Склад".encode("cp1251")
    body = b'{"list":"depot","address":"192.0.2.11","comment":"' + raw + b'"}'
    created = await client.put("/ip/firewall/address-list", content=body)
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        token = base64.b64encode(b"admin:" + raw).decode()
        odd_login = await http.get(
            f"http://127.0.0.1:{rest.port}/rest/system/identity", headers={"Authorization": f"Basic {token}"}
        )

    assert created.status_code == 201
    assert b'"comment":"' + raw + b'"' in created.content
    assert odd_login.status_code == 401


async def test_rest_execute_multiline_script(client: httpx.AsyncClient) -> None:
    """``/execute`` runs several lines: comments, a menu change, relative commands, continuations."""
    script = (
        "# lab script\n"
        "/ip firewall address-list\n"
        "add list=lab address=192.0.2.20 \\\n"
        "    comment=\"first entry\"\n"
        "add list=lab address=192.0.2.21\n"
        ':put "done"\n'
    )

    response = await client.post("/execute", json={"script": script, "as-string": ""})
    entries = (await client.get("/ip/firewall/address-list", params={"list": "lab"})).json()

    assert response.json() == {"ret": "done\r\n"}
    assert [entry["address"] for entry in entries] == ["192.0.2.20", "192.0.2.21"]
    assert entries[0]["comment"] == "first entry"


async def test_rest_bounded_streaming_commands(client: httpx.AsyncClient) -> None:
    """``once``, ``duration`` and ping ``count`` end streaming commands with their rows."""
    once = await client.post("/interface/monitor-traffic", json={"interface": "ether1", "once": ""})
    timed = await client.post("/interface/monitor-traffic", json={"interface": "ether1,ether2", "duration": "1s"})
    reachable = await client.post("/ping", json={"address": "192.0.2.9", "count": "3"})
    unreachable = await client.post("/ping", json={"address": "203.0.113.99", "count": 2})
    unknown = await client.post("/interface/monitor-traffic", json={"interface": "ether9", "once": ""})

    assert once.status_code == 200
    assert len(once.json()) == 1
    assert once.json()[0]["name"] == "ether1"
    assert once.json()[0]["rx-bits-per-second"] == "0"
    assert ".section" not in once.json()[0]
    assert [(row["name"], row[".section"]) for row in timed.json()] == [("ether1", "0"), ("ether2", "0")]
    assert [row["seq"] for row in reachable.json()] == ["0", "1", "2"]
    assert reachable.json()[-1]["packet-loss"] == "0"
    assert [row["status"] for row in unreachable.json()] == ["timeout", "timeout"]
    assert unreachable.json()[-1]["packet-loss"] == "100"
    assert unknown.status_code == 400
    assert unknown.json()["detail"] == "input does not match any value of interface"
