"""The simulator's binary API, driven by unmodified librouteros clients and raw sockets."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import time
from collections.abc import Iterator

import httpx
import librouteros
import pytest
from librouteros.exceptions import ConnectionClosed, FatalError, MultiTrapError, TrapError
from librouteros.login import token
from librouteros.query import And, Key, Or

from simulator.api_server import encode_length
from simulator.background import BackgroundFleet
from simulator.control import ControlServer
from simulator.fleet import Fleet

HOST = "127.0.0.1"
WAIT = 5.0


class RawApi:
    """A minimal blocking API client that shows replies exactly as they arrive."""

    def __init__(self, port: int, *, wrap: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection((HOST, port), timeout=WAIT)
        self.sock = wrap.wrap_socket(sock) if wrap is not None else sock

    def send(self, *words: str | bytes) -> None:
        data = b""
        for word in words:
            raw = word if isinstance(word, bytes) else word.encode()
            data += encode_length(len(raw)) + raw
        self.sock.sendall(data + b"\x00")

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        return data

    def _length(self) -> int:
        first = self._read(1)[0]
        if first < 0x80:
            return first
        if first < 0xC0:
            extra, mask = 1, 0x8000
        elif first < 0xE0:
            extra, mask = 2, 0xC00000
        else:
            extra, mask = 3, 0xE0000000
        return int.from_bytes(bytes([first]) + self._read(extra), "big") ^ mask

    def sentence(self) -> list[bytes]:
        words = []
        while (length := self._length()) != 0:
            words.append(self._read(length))
        return words

    def until_done(self, tag: str | None = None) -> list[list[bytes]]:
        sentences = []
        while True:
            sentence = self.sentence()
            sentences.append(sentence)
            done = sentence[0] == b"!done"
            if done and (tag is None or f".tag={tag}".encode() in sentence):
                return sentences

    def login(self, user: str, password: str) -> None:
        self.send("/login", f"=name={user}", f"=password={password}")
        assert self.until_done() == [[b"!done"]]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def sim() -> Iterator[BackgroundFleet]:
    fleet = Fleet(2, version="7.19", transports=("api", "api-ssl"))
    with BackgroundFleet(fleet) as background:
        yield background


@pytest.fixture(scope="module")
def sim6() -> Iterator[BackgroundFleet]:
    fleet = Fleet(1, version="6.49", transports=("api",))
    with BackgroundFleet(fleet) as background:
        yield background


@pytest.fixture
def api(sim: BackgroundFleet) -> Iterator[librouteros.api.Api]:
    connection = librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=WAIT)
    yield connection
    connection.close()


@pytest.fixture
def raw(sim: BackgroundFleet) -> Iterator[RawApi]:
    client = RawApi(sim.port("r1"))
    client.login("admin", sim.fleet.admin_password)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def clear_faults(sim: BackgroundFleet) -> Iterator[None]:
    yield
    for device in sim.fleet.devices:
        device.faults.clear()


def _remove_all(api: librouteros.api.Api, *path: str) -> None:
    menu = api.path(*path)
    ids = [str(row[".id"]) for row in menu]
    if ids:
        menu.remove(*ids)


# -- login --------------------------------------------------------------------------------


def test_api_login_sync_succeeds(sim: BackgroundFleet) -> None:
    """librouteros connect() logs in with the admin and the service account."""
    admin = librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=WAIT)
    service = librouteros.connect(HOST, "tikflow", sim.fleet.service_password, port=sim.port("r1"), timeout=WAIT)
    assert next(iter(admin("/system/identity/print")))["name"] == "MikroTik"
    assert next(iter(service("/system/resource/print")))["version"].startswith("7.19")
    admin.close()
    service.close()


async def test_api_login_async_succeeds(sim: BackgroundFleet) -> None:
    """librouteros async_connect() logs in and reads the resource menu."""
    api = await librouteros.async_connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=WAIT)
    rows = [row async for row in api("/system/resource/print")]
    await api.close()
    assert rows[0]["board-name"] == "CHR"


def test_api_login_wrong_password_fails(sim: BackgroundFleet) -> None:
    """A wrong password gets the post-6.43 failure text."""
    with pytest.raises(TrapError) as failure:
        librouteros.connect(HOST, "admin", "not-the-password", port=sim.port("r1"), timeout=WAIT)
    assert failure.value.message == "invalid user name or password (6)"


def test_api_login_token_method_fails(sim: BackgroundFleet) -> None:
    """The removed challenge login is refused with ``cannot log in``."""
    raw = RawApi(sim.port("r1"))
    raw.send("/login", "=name=admin", "=response=00" + "0" * 32)
    replies = raw.until_done()
    raw.close()
    assert replies[0] == [b"!trap", b"=message=cannot log in"]
    with pytest.raises(TrapError, match="cannot log in|invalid user name"):
        librouteros.connect(
            HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=WAIT, login_method=token
        )


def test_api_login_needs_api_policy(sim: BackgroundFleet) -> None:
    """A user whose group lacks the ``api`` policy cannot log in over the API."""
    state = sim.fleet.device("r1").state
    sim.call(state.create_item, "/user/group", {"name": "no-api", "policy": "read,write,ssh"})
    sim.call(state.add_user, "console-only", "no-api", "pw-console")
    with pytest.raises(TrapError, match=r"invalid user name or password \(6\)"):
        librouteros.connect(HOST, "console-only", "pw-console", port=sim.port("r1"), timeout=WAIT)


def test_api_commands_before_login_rejected(sim: BackgroundFleet) -> None:
    """Commands before login get a trap, and too many sentences close the connection."""
    raw = RawApi(sim.port("r1"))
    raw.send("/ip/address/print")
    assert raw.until_done()[0][0] == b"!trap"
    with pytest.raises(ConnectionError):
        for _ in range(20):
            raw.send("/ip/address/print")
            raw.until_done()
    raw.close()


# -- print, queries, writes --------------------------------------------------------------


def test_api_print_proplist_and_queries(api: librouteros.api.Api) -> None:
    """print honours .proplist, equality, negation, Or and a multi-clause ?# query."""
    interfaces = api.path("interface")
    names = {row["name"] for row in interfaces.select(Key("name")).where(Key("type") == "ether")}
    assert names == {"ether1", "ether2", "ether3", "ether4", "ether5"}
    rows = list(interfaces.select(Key("name")).where(Or(Key("name") == "ether1", Key("name") == "ether3")))
    assert rows == [{"name": "ether1"}, {"name": "ether3"}]
    rows = list(interfaces.select(Key("name")).where(And(Key("type") == "ether", Key("name") != "ether1")))
    assert [row["name"] for row in rows] == ["ether2", "ether3", "ether4", "ether5"]
    multi = list(
        api.rawCmd(
            "/interface/print", "=.proplist=name", "?-slave", "?=disabled=no", "?=type=bridge", "?=type=ether",
            "?=type=vlan", "?#|", "?#|", "?#&", "?#&",
        )
    )
    assert len(multi) == 5
    assert all(".id" not in row for row in multi)


def test_api_print_count_only(api: librouteros.api.Api) -> None:
    """count-only returns the number of matches in ``ret``."""
    rows = list(api.rawCmd("/interface/print", "=count-only=", "?type=ether"))
    assert rows == [{"ret": 5}]


def test_api_add_set_remove(api: librouteros.api.Api) -> None:
    """add returns a new *HEX id, set changes it, remove deletes comma-joined ids."""
    addresses = api.path("ip", "address")
    first = addresses.add(address="10.50.0.1/24", interface="ether2", comment="first")
    second = addresses.add(address="10.51.0.1/24", interface="ether2")
    assert first.startswith("*")
    assert int(second[1:], 16) > int(first[1:], 16)
    addresses.update(**{".id": first, "comment": "changed", "disabled": "yes"})
    row = next(iter(addresses.select(Key("comment"), Key("disabled"), Key("network")).where(Key(".id") == first)))
    assert row == {"comment": "changed", "disabled": True, "network": "10.50.0.0"}
    addresses.remove(first, second)
    assert not [r for r in addresses if r[".id"] in (first, second)]


def test_api_add_traps(api: librouteros.api.Api) -> None:
    """Bad writes get RouterOS trap texts: reference, duplicate, unknown parameter, yes/no."""
    addresses = api.path("ip", "address")
    with pytest.raises(TrapError, match="input does not match any value of interface") as failure:
        addresses.add(address="10.60.0.1/24", interface="asdf")
    assert failure.value.category == 1
    new_id = addresses.add(address="10.61.0.1/24", interface="ether3")
    with pytest.raises(TrapError, match="failure: already have such address"):
        addresses.add(address="10.61.0.1/24", interface="ether3")
    with pytest.raises(TrapError, match="unknown parameter colour"):
        addresses.add(address="10.62.0.1/24", interface="ether3", colour="blue")
    with pytest.raises(TrapError, match="invalid value of power-cycle-ping-enabled, must be either yes or no"):
        tuple(api.rawCmd("/interface/ethernet/set", "=.id=ether4", "=power-cycle-ping-enabled=true"))
    with pytest.raises(TrapError, match="no such item"):
        addresses.remove("*FFFF0")
    addresses.remove(new_id)


def test_api_named_and_singleton_set(api: librouteros.api.Api) -> None:
    """Named menus take a name as .id; singleton menus set without one."""
    tuple(api.rawCmd("/interface/set", "=.id=ether5", "=comment=spare"))
    row = next(iter(api.path("interface").select(Key("comment")).where(Key("name") == "ether5")))
    assert row == {"comment": "spare"}
    tuple(api("/ip/dns/set", servers="192.0.2.53", **{"allow-remote-requests": "yes"}))
    dns = next(iter(api.path("ip", "dns")))
    assert dns["servers"] == "192.0.2.53"
    assert dns["allow-remote-requests"] is True
    assert ".id" not in dns


def test_api_flag_property_by_presence(api: librouteros.api.Api) -> None:
    """A flag is shown with an empty value when set and is missing once unset."""
    tables = api.path("routing", "table")
    new_id = tables.add(name="lab-vrf", fib="")
    assert next(iter(tables.select(Key("fib")).where(Key(".id") == new_id))) == {"fib": ""}
    tuple(api.rawCmd("/routing/table/set", f"=.id={new_id}", "=!fib="))
    assert next(iter(tables.select(Key("fib"), Key("name")).where(Key(".id") == new_id))) == {"name": "lab-vrf"}
    tables.remove(new_id)


def test_api_unknown_path_two_traps(api: librouteros.api.Api) -> None:
    """An unknown path raises MultiTrapError with category 0 and the prefix trap."""
    with pytest.raises(MultiTrapError) as failure:
        tuple(api("/aasasa/print"))
    first, second = failure.value.traps
    assert (first.category, first.message) == (0, "no such command or directory (aasasa)")
    assert second.message == "no such command prefix"


def test_api_permission_denied(sim: BackgroundFleet) -> None:
    """A user in the read group gets ``not enough permissions (9)`` on add, set and remove."""
    state = sim.fleet.device("r1").state
    sim.call(state.add_user, "viewer", "read", "pw-viewer")
    api = librouteros.connect(HOST, "viewer", "pw-viewer", port=sim.port("r1"), timeout=WAIT)
    assert isinstance(list(api.path("ip", "address").select(Key("address"))), list)
    with pytest.raises(TrapError, match=r"not enough permissions \(9\)"):
        api.path("ip", "address").add(address="10.70.0.1/24", interface="ether1")
    with pytest.raises(TrapError, match=r"not enough permissions \(9\)"):
        tuple(api("/system/identity/set", name="nope"))
    with pytest.raises(TrapError, match=r"not enough permissions \(9\)"):
        api.path("ip", "address").remove("*1")
    api.close()


def test_api_leading_zero_name_stays_string(api: librouteros.api.Api, raw: RawApi) -> None:
    """``name=0000`` goes over the wire as the string 0000 and librouteros keeps it."""
    lists = api.path("interface", "list")
    new_id = lists.add(name="0000")
    raw.send("/interface/list/print", "?name=0000")
    sentences = raw.until_done()
    assert b"=name=0000" in sentences[0]
    assert next(iter(lists.select(Key("name")).where(Key(".id") == new_id))) == {"name": "0000"}
    lists.remove(new_id)


def test_api_non_utf8_comment_bytes_round_trip(raw: RawApi) -> None:
    """CP1251 and GBK bytes in a comment come back byte for byte."""
    comment = "Привет".encode("cp1251") + b" / " + "小包".encode("gbk") + b"\xff"
    raw.send("/ip/firewall/address-list/add", "=list=bytes", "=address=192.0.2.7", b"=comment=" + comment)
    new_id = raw.until_done()[0][1].split(b"=", 2)[2]
    raw.send("/ip/firewall/address-list/print", "=.proplist=comment", b"?.id=" + new_id)
    rows = raw.until_done()
    assert rows[0] == [b"!re", b"=comment=" + comment]
    raw.send("/ip/firewall/address-list/remove", b"=.id=" + new_id)
    raw.until_done()


def test_api_long_words_both_directions(api: librouteros.api.Api) -> None:
    """Words over 0x3FFF and 0x1FFFFF bytes travel in both directions intact."""
    lists = api.path("ip", "firewall", "address-list")
    for size in (0x4000 + 5, 0x200000 + 7):
        comment = "x" * (size - 3) + "end"
        new_id = lists.add(list="long", address="192.0.2.9", comment=comment)
        row = next(iter(lists.select(Key("comment")).where(Key(".id") == new_id)))
        assert row["comment"] == comment
        lists.remove(new_id)


def test_api_control_byte_length_closes(sim: BackgroundFleet) -> None:
    """A length prefix of 0xF0 or more is a protocol error and closes the connection."""
    raw = RawApi(sim.port("r1"))
    raw.sock.sendall(b"\xf8\x00\x00\x00\x01x\x00")
    with pytest.raises(ConnectionError):
        raw.sentence()
    raw.close()


# -- framing: !empty, tags, cancel, listen, quit --------------------------------------


def test_api_empty_reply_on_7_19(raw: RawApi) -> None:
    """RouterOS 7.18+ replies to an empty print with !empty then !done, both tagged."""
    raw.send("/ip/address/print", "?comment=nothing-has-this", ".tag=e1")
    assert raw.until_done("e1") == [[b"!empty", b".tag=e1"], [b"!done", b".tag=e1"]]


def test_api_no_empty_reply_on_6_49(sim6: BackgroundFleet) -> None:
    """RouterOS 6.49 replies to an empty print with !done alone."""
    raw = RawApi(sim6.port("r1"))
    raw.login("admin", sim6.fleet.admin_password)
    raw.send("/ip/address/print", ".tag=e2")
    assert raw.until_done("e2") == [[b"!done", b".tag=e2"]]
    raw.close()


def test_api_tags_on_concurrent_commands(sim: BackgroundFleet, raw: RawApi) -> None:
    """Two commands in flight at once each get replies carrying their own tag."""
    sim.fleet.device("r1").faults.set_latency(0.3)
    raw.send("/system/identity/print", ".tag=slow")
    raw.send("/interface/print", "=count-only=", ".tag=other")
    seen = [raw.sentence(), raw.sentence(), raw.sentence()]
    tags = sorted(word for sentence in seen for word in sentence if word.startswith(b".tag="))
    assert tags == [b".tag=other", b".tag=slow", b".tag=slow"]
    assert all(any(word.startswith(b".tag=") for word in sentence) for sentence in seen)


def test_api_cancel_order(raw: RawApi) -> None:
    """/cancel sends trap(X, category 2), done(cancel), done(X), in that order."""
    raw.send("/ip/address/listen", ".tag=L")
    raw.send("/cancel", "=tag=L", ".tag=C")
    replies = [raw.sentence(), raw.sentence(), raw.sentence()]
    assert replies == [
        [b"!trap", b"=category=2", b"=message=interrupted", b".tag=L"],
        [b"!done", b".tag=C"],
        [b"!done", b".tag=L"],
    ]


def test_api_listen_change_and_dead(sim: BackgroundFleet, raw: RawApi, api: librouteros.api.Api) -> None:
    """listen streams a !re for a new item and a .dead=yes one when it is removed."""
    raw.send("/ip/firewall/address-list/listen", ".tag=watch")
    time.sleep(0.2)  # NOTE: gives the listener time to subscribe; the reads below are bounded.
    lists = api.path("ip", "firewall", "address-list")
    new_id = lists.add(list="watched", address="192.0.2.77")
    added = raw.sentence()
    lists.remove(new_id)
    dead = raw.sentence()
    raw.send("/cancel", "=tag=watch")
    assert added[0] == b"!re"
    assert f"=.id={new_id}".encode() in added
    assert b"=list=watched" in added
    assert dead == [b"!re", f"=.id={new_id}".encode(), b"=.dead=yes", b".tag=watch"]


def test_api_quit_is_fatal(api: librouteros.api.Api) -> None:
    """/quit gets !fatal with the bare word ``session terminated on request``."""
    with pytest.raises(FatalError, match="session terminated on request"):
        tuple(api("/quit"))


def test_api_writes_are_fragmented(sim: BackgroundFleet) -> None:
    """Replies arrive in several TCP segments split inside prefixes and words."""
    raw = RawApi(sim.port("r1"))
    raw.login("admin", sim.fleet.admin_password)
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.send("/system/resource/print")
    chunks = []
    raw.sock.settimeout(WAIT)
    data = b""
    while not data.endswith(b"\x05!done\x00"):
        chunk = raw.sock.recv(65536)
        assert chunk, "connection closed early"
        chunks.append(chunk)
        data += chunk
    raw.close()
    assert data.startswith(b"\x03!re")
    assert len(chunks) > 1


# -- TLS --------------------------------------------------------------------------------


def test_api_ssl_with_fingerprint(sim: BackgroundFleet) -> None:
    """api-ssl serves the self-signed certificate whose SHA-256 the fleet publishes."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    port = sim.port("r1", "api-ssl")
    with socket.create_connection((HOST, port), timeout=WAIT) as sock, context.wrap_socket(sock) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    assert hashlib.sha256(der).hexdigest() == sim.fleet.fingerprint
    api = librouteros.connect(
        HOST, "admin", sim.fleet.admin_password, port=port, timeout=WAIT, ssl_wrapper=context.wrap_socket
    )
    assert next(iter(api("/system/identity/print")))["name"]
    api.close()


async def test_api_ssl_async(sim: BackgroundFleet) -> None:
    """async_connect works over api-ssl with an SSLContext."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    api = await librouteros.async_connect(
        HOST, "tikflow", sim.fleet.service_password, port=sim.port("r1", "api-ssl"), ssl_wrapper=context, timeout=WAIT
    )
    rows = [row async for row in api.path("interface").select(Key("name"))]
    await api.close()
    assert {"name": "ether1"} in rows


# -- faults -------------------------------------------------------------------------------


def test_fault_latency_delays_replies(sim: BackgroundFleet, api: librouteros.api.Api) -> None:
    """Latency delays each reply by at least the configured time."""
    sim.fleet.device("r1").faults.set_latency(0.25, jitter=0.05)
    started = time.monotonic()
    tuple(api("/system/identity/print"))
    assert time.monotonic() - started >= 0.25


def test_fault_drop_after_sentences(sim: BackgroundFleet, api: librouteros.api.Api) -> None:
    """The connection closes after the configured number of reply sentences."""
    sim.fleet.device("r1").faults.drop_after(3)
    with pytest.raises((ConnectionClosed, ConnectionError, OSError)):
        tuple(api("/interface/print"))


def test_fault_hang_never_answers(sim: BackgroundFleet) -> None:
    """A hung device accepts the connection but never replies to the login."""
    sim.fleet.device("r1").faults.hang = True
    with pytest.raises((socket.timeout, TimeoutError)):
        librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=0.5)


def test_fault_refuse_logins(sim: BackgroundFleet) -> None:
    """Refused logins fail with the normal wrong-password text."""
    sim.fleet.device("r1").faults.refuse_logins = True
    with pytest.raises(TrapError, match=r"invalid user name or password \(6\)"):
        librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=WAIT)


def test_fault_trap_on_nth_call(sim: BackgroundFleet, api: librouteros.api.Api) -> None:
    """An injected trap hits only the chosen call and carries its category."""
    sim.fleet.device("r1").faults.trap_on("/system/identity/set", "failure: injected", category=4, nth=2)
    tuple(api("/system/identity/set", name="first"))
    with pytest.raises(TrapError) as failure:
        tuple(api("/system/identity/set", name="second"))
    assert (failure.value.message, failure.value.category) == ("failure: injected", 4)
    tuple(api("/system/identity/set", name="MikroTik"))


def test_fault_restart_keeps_or_loses_state(sim: BackgroundFleet) -> None:
    """Restart drops connections; with keep_state=False the added items are gone."""
    port = sim.port("r2")
    api = librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=port, timeout=WAIT)
    api.path("ip", "address").add(address="10.80.0.1/24", interface="ether1")
    sim.run(sim.fleet.restart("r2", keep_state=True))
    with pytest.raises((ConnectionClosed, ConnectionError, OSError)):
        tuple(api("/ip/address/print"))
    api = librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=port, timeout=WAIT)
    assert [row["address"] for row in api.path("ip", "address")] == ["10.80.0.1/24"]
    sim.run(sim.fleet.restart("r2", keep_state=False))
    api = librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=port, timeout=WAIT)
    assert list(api.path("ip", "address")) == []
    api.close()


def test_control_endpoint_over_http(sim: BackgroundFleet) -> None:
    """The loopback control endpoint sets faults, reads state and restarts a device."""
    control = ControlServer(sim.fleet)
    sim.run(control.start())
    try:
        base = f"http://{HOST}:{control.port}"
        with httpx.Client(base_url=base, timeout=WAIT) as client:
            devices = client.get("/devices").json()
            assert [entry["name"] for entry in devices] == ["r1", "r2"]
            reply = client.post("/devices/r1/faults", json={"rest_invalid_json": True, "latency": 0.01,
                                                            "traps": [{"command": "/ip/address/add",
                                                                       "message": "failure: already have such address"}]})
            assert reply.status_code == 200
            faults = sim.fleet.device("r1").faults
            assert faults.rest_invalid_json is True
            assert faults.trap_for("/ip/address/add") is not None
            bad = client.post("/devices/r1/faults", json={"explode": True})
            assert bad.status_code == 400
            assert "explode" in bad.json()["error"]
            assert client.get("/devices/r9/faults").status_code == 404
            rows = client.get("/devices/r1/state", params={"path": "/interface"}).json()
            assert {row["name"] for row in rows} >= {"ether1", "ether5"}
            assert client.delete("/devices/r1/faults").json()["rest_invalid_json"] is False
            restarted = client.post("/devices/r2/restart", json={"keep_state": True})
            assert restarted.json()["name"] == "r2"
    finally:
        sim.run(control.stop())


async def test_fault_latency_async_client(sim: BackgroundFleet) -> None:
    """The async client sees the same latency fault and still gets its rows."""
    sim.fleet.device("r2").faults.set_latency(0.1)
    api = await librouteros.async_connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r2"), timeout=WAIT)
    started = asyncio.get_running_loop().time()
    rows = [row async for row in api("/system/identity/print")]
    elapsed = asyncio.get_running_loop().time() - started
    await api.close()
    assert rows
    assert elapsed >= 0.1


def test_api_cancel_without_tag_cancels_all(raw: RawApi) -> None:
    """/cancel without =tag= interrupts every running command but not itself."""
    raw.send("/ip/address/listen", ".tag=A")
    raw.send("/interface/listen", ".tag=B")
    raw.send("/cancel", ".tag=C")
    replies = [raw.sentence() for _ in range(5)]
    traps = [sentence for sentence in replies if sentence[0] == b"!trap"]
    dones = [sentence for sentence in replies if sentence[0] == b"!done"]
    assert sorted(sentence[-1] for sentence in traps) == [b".tag=A", b".tag=B"]
    assert dones[0] == [b"!done", b".tag=C"]
    assert sorted(sentence[-1] for sentence in dones[1:]) == [b".tag=A", b".tag=B"]


def test_api_listen_interface_menu(sim: BackgroundFleet, raw: RawApi, api: librouteros.api.Api) -> None:
    """listen on /interface reports a change made through /interface/ethernet."""
    raw.send("/interface/listen", ".tag=if")
    time.sleep(0.2)  # NOTE: gives the listener time to subscribe; the read below is bounded.
    tuple(api.rawCmd("/interface/ethernet/set", "=.id=ether3", "=comment=watched"))
    change = raw.sentence()
    raw.send("/cancel", "=tag=if")
    assert change[0] == b"!re"
    assert b"=name=ether3" in change
    assert b"=type=ether" in change
    assert b"=comment=watched" in change


def test_api_script_run_applies_source(api: librouteros.api.Api) -> None:
    """/system/script/run runs the stored source and counts the run."""
    scripts = api.path("system", "script")
    new_id = scripts.add(name="add-pool", source="/ip pool add name=from-script ranges=10.0.9.2-10.0.9.9")
    tuple(api("/system/script/run", **{".id": "add-pool"}))
    pools = [row["name"] for row in api.path("ip", "pool")]
    row = next(iter(scripts.select(Key("run-count")).where(Key(".id") == new_id)))
    assert "from-script" in pools
    assert row == {"run-count": 1}
    scripts.remove(new_id)


def test_api_scheduler_interval_job_fires(api: librouteros.api.Api) -> None:
    """A scheduler job with an interval runs its on-event and counts each run."""
    jobs = api.path("system", "scheduler")
    new_id = jobs.add(name="ticker", interval="200ms", policy="read,write",
                      **{"on-event": "/system identity set name=ticked"})
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if next(iter(api("/system/identity/print")))["name"] == "ticked":
            break
        time.sleep(0.05)
    row = next(iter(jobs.select(Key("run-count"), Key("owner")).where(Key(".id") == new_id)))
    jobs.remove(new_id)
    name = next(iter(api("/system/identity/print")))["name"]
    tuple(api("/system/identity/set", name="MikroTik"))
    assert name == "ticked"
    assert int(row["run-count"]) >= 1
    assert row["owner"] == "admin"


def test_api_random_bytes_do_not_break_server(sim: BackgroundFleet) -> None:
    """Seeded random bytes close only their own connection; the device keeps serving."""
    import random

    generator = random.Random(11)
    for _ in range(30):
        garbage = bytes(generator.randrange(256) for _ in range(generator.randint(1, 300)))
        with socket.create_connection((HOST, sim.port("r2")), timeout=WAIT) as sock:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(WAIT)
            while sock.recv(65536):
                pass
    api = librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r2"), timeout=WAIT)
    assert next(iter(api("/system/identity/print")))["name"]
    api.close()


def test_api_fragments_split_prefix_and_word() -> None:
    """The fragmenter cuts after the first byte of a multi-byte prefix and inside a word."""
    from simulator.api_server import _fragments, encode_sentence

    word = "=comment=" + "y" * 200
    pieces = encode_sentence(["!re", word])
    chunks = _fragments(pieces, 65536)
    assert b"".join(chunks) == b"".join(pieces)
    prefix = encode_length(len(word))
    boundaries = set()
    position = 0
    for chunk in chunks:
        position += len(chunk)
        boundaries.add(position)
    prefix_start = len(encode_length(3)) + 3
    assert prefix_start + 1 in boundaries
    assert any(prefix_start + len(prefix) < cut < prefix_start + len(prefix) + len(word) for cut in boundaries)


async def test_api_challenge_login_on_old_versions() -> None:
    """RouterOS before 6.43 offers only the MD5 challenge login, which librouteros token() completes."""
    from librouteros.login import async_token

    from simulator.fleet import Fleet

    async with Fleet(1, version="6.40", transports=("api",)) as fleet:
        port = fleet.device("r1").ports["api"]
        api = await librouteros.async_connect(
            HOST, "admin", fleet.admin_password, port=port, timeout=WAIT, login_method=async_token
        )
        rows = [row async for row in api("/system/identity/print")]
        await api.close()
        with pytest.raises(TrapError, match="cannot log in"):
            await librouteros.async_connect(
                HOST, "admin", "wrong", port=port, timeout=WAIT, login_method=async_token
            )
    assert rows == [{"name": "MikroTik"}]
