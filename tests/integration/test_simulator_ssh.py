"""The simulator's SSH console against asyncssh clients, plus its shared state with API and REST."""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import httpx
import librouteros
import pytest

from routeros.rsc import parse_export
from simulator.api_server import ApiServer
from simulator.faults import Faults
from simulator.rest import RestServer
from simulator.ssh import SshOptions, SshServer, parse_login_name
from simulator.ssh_shell import LICENSE_QUESTION, TERMINAL_PROBE
from simulator.state import DeviceState

PASSWORD = "lab-secret"
TIMEOUT = 10.0
EXPORTS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "exports"
CP1251_COMMENT = "Склад".encode("cp1251").decode("utf-8", "surrogateescape")


def make_device(version: str = "7.19") -> DeviceState:
    """Build a device with two addresses, a PPP secret and users with and without ssh."""
    state = DeviceState.factory(version, admin_password=PASSWORD)
    state.create_item("/user/group", {"name": "no-ssh", "policy": "read,write,api,rest-api,test"})
    state.add_user("apionly", "no-ssh", PASSWORD)
    state.add_user("reader", "read", PASSWORD)
    state.create_item(
        "/ip/address",
        {"address": "192.0.2.1/24", "interface": "ether1", "comment": "uplink", "disabled": "false"},
    )
    state.create_item("/ip/address", {"address": "198.51.100.1/24", "interface": "ether2", "disabled": "true"})
    state.create_item("/ppp/secret", {"name": "branch", "password": "tunnel-key", "service": "l2tp"})
    return state


async def start_ssh(state: DeviceState, **options: object) -> SshServer:
    server = SshServer(state, options=SshOptions(**options))  # type: ignore[arg-type]
    await server.start()
    return server


@pytest.fixture
async def device() -> DeviceState:
    return make_device()


@pytest.fixture
async def ssh(device: DeviceState) -> AsyncIterator[SshServer]:
    server = await start_ssh(device, license_prompt=False, probe_timeout=0.5)
    yield server
    await server.stop()


def connect(server: SshServer, username: str = "admin+cet512w", password: str = PASSWORD, **extra: object):
    return asyncssh.connect(
        "127.0.0.1",
        server.port,
        username=username,
        password=password,
        known_hosts=None,
        connect_timeout=TIMEOUT,
        **extra,  # type: ignore[arg-type]
    )


async def run(
    server: SshServer, command: str, username: str = "admin+cet512w", password: str = PASSWORD
) -> bytes:
    """Run one exec request and return its raw output."""
    async with connect(server, username, password) as connection:
        result = await asyncio.wait_for(connection.run(command, encoding=None), TIMEOUT)
    assert isinstance(result.stdout, bytes)
    return result.stdout


async def text(server: SshServer, command: str) -> str:
    return (await run(server, command)).decode("utf-8").replace("\r\n", "\n")


async def read_until(stream: asyncssh.SSHReader, marker: bytes) -> bytes:
    """Read from an interactive channel until ``marker`` appears; bounded by TIMEOUT."""
    received = bytearray()

    async def collect() -> None:
        while marker not in received:
            chunk = await stream.read(4096)
            if not chunk:
                raise EOFError(f"channel closed before {marker!r}; got {bytes(received)!r}")
            received.extend(chunk)

    await asyncio.wait_for(collect(), TIMEOUT)
    return bytes(received)


def test_login_name_options() -> None:
    """Console options after ``+`` in the login name are split off and read."""
    netmiko = parse_login_name("admin+ct511w4098h")
    ansible = parse_login_name("admin+cet512w")
    plain = parse_login_name("admin")

    assert (netmiko.user, netmiko.width, netmiko.height) == ("admin", 511, 4098)
    assert netmiko.colors is False
    assert netmiko.detect_terminal is False
    assert (ansible.user, ansible.width, ansible.dumb) == ("admin", 512, True)
    assert plain == parse_login_name("admin+")
    assert plain.detect_terminal is True


async def test_ssh_exec_print_variants(ssh: SshServer) -> None:
    """Exec mode prints the table, ``detail`` and ``terse`` layouts with yes/no booleans."""
    table = await text(ssh, "/ip address print")
    detail = await text(ssh, "/ip address print detail")
    terse = await text(ssh, "/ip/address/print terse")
    where = await text(ssh, "/ip address print terse where interface=ether2")

    assert "ADDRESS" in table
    assert re.search(r"^ 1 X +198\.51\.100\.1/24 +198\.51\.100\.0 +ether2$", table, re.MULTILINE)
    assert re.search(r"^ 0 +;;; uplink$", detail, re.MULTILINE)
    first_item = detail.split(" 1 X")[0]
    for pair in ("address=192.0.2.1/24", "network=192.0.2.0", "interface=ether1"):
        assert f" {pair} " in first_item
    assert terse.splitlines()[0].startswith(" 0   address=192.0.2.1/24 interface=ether1 comment=uplink ")
    assert terse.splitlines()[1].startswith(" 1 X address=198.51.100.1/24 ")
    assert len(where.splitlines()) == 1
    assert "198.51.100.1/24" in where


async def test_ssh_singleton_and_system_menus(ssh: SshServer, device: DeviceState) -> None:
    """Identity, resource and backup commands print what RouterOS prints."""
    identity = await text(ssh, "/system identity print")
    resource = await text(ssh, "/system resource print")
    backup = await text(ssh, "/system backup save name=before-change")
    renamed = await text(ssh, "/system identity set name=edge-1; /system identity print")

    assert identity == "  name: MikroTik\n"
    assert re.search(r"^ +version: 7\.19", resource, re.MULTILINE)
    assert re.search(r"^ +board-name: CHR$", resource, re.MULTILINE)
    assert backup == "Configuration backup saved\n"
    files = device.table("/file")
    assert files is not None
    assert "before-change.backup" in [item.get("name") for item in files.items]
    assert renamed == "  name: edge-1\n"


async def test_ssh_changes_by_find_number_and_name(ssh: SshServer, device: DeviceState) -> None:
    """``set [ find ]``, ``set 0`` after a print, named items and ``remove`` change the state."""
    await text(ssh, '/ip address set [ find interface=ether2 ] comment="lab net" disabled=no')
    numbered = await text(ssh, "/ip address print; /ip address set 0 comment=renumbered")
    await text(ssh, "/interface ethernet set ether3 mtu=9000")
    added = await text(ssh, ':put [/ip address add address=203.0.113.5/24 interface=ether3]')
    await text(ssh, f"/ip address remove {added.strip()}")

    addresses = device.table("/ip/address")
    assert addresses is not None
    assert [item.get("comment") for item in addresses.items] == ["renumbered", "lab net"]
    assert addresses.items[1]["disabled"] == "false"
    assert "ADDRESS" in numbered
    assert re.fullmatch(r"\*[0-9A-F]+\n", added)
    assert len(addresses.items) == 2
    ether3 = device.find_interface("ether3")
    assert ether3 is not None
    assert ether3[1]["mtu"] == "9000"


async def test_ssh_error_texts(ssh: SshServer) -> None:
    """Console errors carry RouterOS wording and 1-based columns."""
    cases = {
        "/ip addres print": "bad command name addres (line 1 column 5)",
        "/ip address print foo": "expected end of command (line 1 column 19)",
        '/ip address add address="10.0.0.1/24': "syntax error (line 1 column 25)",
        "/ip address print; /ip address set 7 comment=x": "no such item",
        "/ip address add address=bogus interface=ether1": "invalid value for argument address",
        "/ip address add address=192.0.2.1/24 interface=ether1": "failure: already have such address",
        "/ip address add address=10.0.0.1/24 interface=ether1 vrf=main": (
            "expected end of command (line 1 column 54)"
        ),
        "/ip address add address=10.0.0.1/24 interface=nope": "input does not match any value of interface",
        ":local x 1": "bad command name local (line 1 column 2)",
    }
    for command, expected in cases.items():
        output = await text(ssh, command)
        assert output.splitlines()[-1] == expected, command


async def test_ssh_read_only_user_gets_permission_error(ssh: SshServer) -> None:
    """A user without the write policy gets ``not enough permissions (9)``."""
    output = await run(ssh, "/ip address set 0 comment=x", username="reader+cet512w")

    assert output.decode().strip() == "not enough permissions (9)"


async def test_ssh_rejects_bad_password_and_missing_policy(ssh: SshServer) -> None:
    """Wrong passwords and users without the ssh policy cannot log in."""
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(ssh, password="wrong"):
            pass
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(ssh, username="apionly"):
            pass


async def test_ssh_interactive_dialogs_prompt_and_echo(device: DeviceState) -> None:
    """The shell asks about the license once, probes the terminal, echoes and changes prompts."""
    server = await start_ssh(device, license_prompt=True, probe_timeout=5.0)
    try:
        async with connect(server, username="admin") as connection:
            process = await connection.create_process(term_type="xterm", term_size=(120, 40), encoding=None)
            greeting = await read_until(process.stdout, LICENSE_QUESTION)
            process.stdin.write(b"n")
            probe = await read_until(process.stdout, TERMINAL_PROBE)
            process.stdin.write(b"\x1b/Z")
            prompt = await read_until(process.stdout, b"[admin@MikroTik] > ")
            process.stdin.write(b"/ip address\r")
            menu_prompt = await read_until(process.stdout, b"[admin@MikroTik] /ip address> ")
            process.stdin.write(b"print terse\r")
            printed = await read_until(process.stdout, b"/ip address> ")
            process.stdin.write(b"/ip addres\r")
            error = await read_until(process.stdout, b"/ip address> ")
            process.stdin.write(b"/quit\r")
            await asyncio.wait_for(process.wait_closed(), TIMEOUT)
            process.close()

        async with connect(server, username="admin") as connection:
            process = await connection.create_process(term_type="xterm", encoding=None)
            second = await read_until(process.stdout, TERMINAL_PROBE)
            process.close()
    finally:
        await server.stop()

    assert LICENSE_QUESTION in greeting
    assert TERMINAL_PROBE in probe
    assert b"MikroTik RouterOS 7.19" in prompt
    assert b"/ip address\r\n" in menu_prompt
    assert b"print terse\r\n" in printed
    assert b"address=192.0.2.1/24" in printed
    assert b"bad command name addres (line 1 column 5)" in error
    assert LICENSE_QUESTION not in second


async def test_ssh_terminal_options_skip_probe(device: DeviceState) -> None:
    """With ``+t`` (netmiko's ``+ct511w4098h``) no ``ESC Z`` probe is sent."""
    server = await start_ssh(device, license_prompt=False, probe_timeout=5.0)
    try:
        async with connect(server, username="admin+ct511w4098h") as connection:
            process = await connection.create_process(term_type="vt100", encoding=None)
            prompt = await read_until(process.stdout, b"[admin@MikroTik] > ")
            process.stdin.write(b"/system identity print\r")
            printed = await read_until(process.stdout, b"[admin@MikroTik] > ")
            process.stdin.write(b"\x04")
            await asyncio.wait_for(process.wait_closed(), TIMEOUT)
    finally:
        await server.stop()

    assert TERMINAL_PROBE not in prompt
    assert b"name: MikroTik" in printed


async def test_ssh_export_variants_v7(ssh: SshServer) -> None:
    """v7 exports hide secrets unless ``show-sensitive``; terse repeats the menu on each line."""
    compact = await text(ssh, "/export")
    terse = await text(ssh, "/export terse")
    sensitive = await text(ssh, "/export terse show-sensitive")
    menu_only = await text(ssh, "/ip address export")
    verbose = await text(ssh, "/export verbose")

    assert re.match(r"# \d{4}-\d\d-\d\d \d\d:\d\d:\d\d by RouterOS 7\.19", compact)
    assert "\n/ip address\nadd address=192.0.2.1/24 interface=ether1 comment=uplink" in compact
    assert "\n/ip address add address=192.0.2.1/24 interface=ether1 comment=uplink" in terse
    assert "tunnel-key" not in terse
    assert "/ppp secret add name=branch password=tunnel-key service=l2tp" in sensitive
    assert "/ppp" not in menu_only
    assert "/ip address" in menu_only
    # The simulator prints verbose exports like compact ones (no default values listed).
    assert verbose.splitlines()[2:] == compact.splitlines()[2:]
    parsed = parse_export(compact)
    assert ("/ip/address", "add") in {(command.path, command.verb) for command in parsed.commands}


async def test_ssh_export_sensitive_words_on_v6() -> None:
    """v6 shows secrets by default, hides them with ``hide-sensitive`` and rejects ``show-sensitive``."""
    server = await start_ssh(make_device("6.49.10"))
    try:
        plain = await text(server, "/export terse")
        hidden = await text(server, "/export terse hide-sensitive")
        rejected = await text(server, "/export show-sensitive")
    finally:
        await server.stop()

    assert re.match(r"# [a-z]{3}/\d\d/\d{4} \d\d:\d\d:\d\d by RouterOS 6\.49\.10", plain)
    assert "password=tunnel-key" in plain
    assert "tunnel-key" not in hidden
    assert rejected == "expected end of command (line 1 column 9)\n"


async def test_ssh_export_to_file(ssh: SshServer, device: DeviceState) -> None:
    """``export file=`` prints nothing and writes ``<name>.rsc`` into /file."""
    output = await text(ssh, "/export file=nightly")

    files = device.table("/file")
    assert output == ""
    assert files is not None
    stored = [item for item in files.items if item.get("name") == "nightly.rsc"]
    assert len(stored) == 1
    assert "add address=192.0.2.1/24" in stored[0]["contents"]


async def test_ssh_output_keeps_raw_bytes(ssh: SshServer, device: DeviceState) -> None:
    """Values that are not UTF-8 come out as the stored bytes, in print and in export."""
    device.create_item("/ip/firewall/address-list", {"list": "store", "address": "192.0.2.9", "comment": CP1251_COMMENT})
    raw_comment = CP1251_COMMENT.encode("utf-8", "surrogateescape")

    printed = await run(ssh, "/ip firewall address-list print terse")
    exported = await run(ssh, "/ip firewall address-list export")

    assert b"comment=" + raw_comment in printed
    escaped = "".join(f"\\{byte:02X}" for byte in raw_comment).encode()
    assert b'comment="' + escaped + b'"' in exported


async def test_ssh_hex_escapes_store_raw_bytes(ssh: SshServer, device: DeviceState) -> None:
    """``\\HH`` escapes typed on the console store exactly those bytes, even when not UTF-8."""
    await run(ssh, '/ip firewall address-list add list=depot address=192.0.2.10 comment="\\D1\\EA\\EB\\E0\\E4 1"')

    entries = device.table("/ip/firewall/address-list")
    assert entries is not None
    stored = entries.items[-1]["comment"].encode("utf-8", "surrogateescape")
    assert stored == "Склад 1".encode("cp1251")


async def test_ssh_hang_fault_never_answers(device: DeviceState) -> None:
    """With the hang fault on, a command gets no output and the client's timeout ends the wait."""
    faults = Faults()
    server = SshServer(device, faults=faults)
    await server.start()
    try:
        async with connect(server) as connection:
            faults.hang = True
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(connection.run("/system identity print"), 0.5)
    finally:
        await server.stop()


async def test_ssh_v6_offers_only_ssh_rsa() -> None:
    """A v6 device signs its host key only with ``ssh-rsa``; v7 offers ``ssh-ed25519``."""
    old = await start_ssh(make_device("6.49.10"))
    new = await start_ssh(make_device("7.19"))
    try:
        async with connect(old, server_host_key_algs=["ssh-rsa"]) as connection:
            old_key = connection.get_server_host_key().get_algorithm()
        with pytest.raises((asyncssh.KeyExchangeFailed, asyncssh.DisconnectError)):
            async with connect(old, server_host_key_algs=["rsa-sha2-256", "ssh-ed25519"]):
                pass
        async with connect(new) as connection:
            new_key = connection.get_server_host_key().get_algorithm()
    finally:
        await old.stop()
        await new.stop()

    assert old_key == "ssh-rsa"
    assert new_key == "ssh-ed25519"


async def test_ssh_change_seen_by_api_and_rest(device: DeviceState) -> None:
    """A change made over SSH is visible through librouteros and REST at once."""
    ssh = await start_ssh(device)
    api = ApiServer(device)
    rest = RestServer(device)
    await api.start()
    await rest.start()
    try:
        await text(ssh, "/ip address add address=203.0.113.7/24 interface=ether3 comment=from-ssh")

        def read_over_api() -> list[dict[str, object]]:
            connection = librouteros.connect("127.0.0.1", "admin", PASSWORD, port=api.port, timeout=TIMEOUT)
            try:
                return list(connection.path("ip", "address"))
            finally:
                connection.close()

        api_rows = await asyncio.wait_for(asyncio.to_thread(read_over_api), TIMEOUT)
        async with httpx.AsyncClient(auth=("admin", PASSWORD), timeout=TIMEOUT) as http:
            rest_rows = (
                await http.get(f"http://127.0.0.1:{rest.port}/rest/ip/address", params={"comment": "from-ssh"})
            ).json()
    finally:
        await ssh.stop()
        await api.stop()
        await rest.stop()

    assert "203.0.113.7/24" in [row["address"] for row in api_rows]
    assert [row["address"] for row in rest_rows] == ["203.0.113.7/24"]


def export_files() -> list[Path]:
    """The real exports when the folder exists, plus the product's own samples."""
    samples = Path(__file__).resolve().parents[2] / "simulator" / "samples"
    found = sorted(EXPORTS.glob("*.rsc")) if EXPORTS.is_dir() else []
    return found + sorted(samples.glob("*.rsc"))


def command_key(command: object) -> tuple[object, ...]:
    """Identify an export command by menu, verb, selector and its set of properties."""
    return (
        command.path,  # type: ignore[attr-defined]
        command.verb,  # type: ignore[attr-defined]
        command.selector,  # type: ignore[attr-defined]
        frozenset(command.properties),  # type: ignore[attr-defined]
    )


async def test_ssh_export_round_trip() -> None:
    """Each export loaded into a device comes back over SSH with the same items and values."""
    checked = []
    for path in export_files():
        original = parse_export(path.read_bytes())
        state = DeviceState.from_export(original, admin_password=PASSWORD)
        server = await start_ssh(state)
        try:
            words = ["/export"]
            if original.style == "terse":
                words.append("terse")
            if state.version_at_least(7):
                words.append("show-sensitive")
            output = await run(server, " ".join(words))
        finally:
            await server.stop()

        again = parse_export(output)
        assert again.style == original.style, path.name
        assert again.header.version == original.header.version, path.name
        before = collections.Counter(command_key(command) for command in original.commands)
        after = collections.Counter(command_key(command) for command in again.commands)
        assert before - after == collections.Counter(), path.name
        assert after - before == collections.Counter(), path.name
        checked.append(path.name)

    assert len(checked) == len(export_files())


async def test_ssh_exec_ignores_width_option(ssh: SshServer, device: DeviceState) -> None:
    """Exec output is cut at 80 columns whatever width ``w`` sets; a shell honours the option."""
    long_name = "vlan-" + "x" * 70
    device.create_item("/interface/vlan", {"name": long_name, "vlan-id": "99", "interface": "ether1"})
    device.create_item("/ip/address", {"address": "203.0.113.1/24", "interface": long_name})

    exec_output = await run(ssh, "/ip address print", username="admin+cet512w")
    async with connect(ssh, username="admin+ct200w") as connection:
        process = await connection.create_process(term_type="vt100", encoding=None)
        await read_until(process.stdout, b"] > ")
        process.stdin.write(b"/ip address print\r")
        shell_output = await read_until(process.stdout, long_name.encode() + b"\r\n")
        process.close()

    assert b"NETWORK" in exec_output
    assert b"INTERFACE" not in exec_output
    assert long_name.encode() not in exec_output
    assert b"INTERFACE" in shell_output


class ShellSession:
    """An interactive session driven byte by byte, as a terminal would."""

    def __init__(self, process: asyncssh.SSHClientProcess) -> None:
        self.process = process

    async def expect(self, marker: bytes) -> bytes:
        return await read_until(self.process.stdout, marker)

    async def type(self, data: bytes, marker: bytes) -> bytes:
        self.process.stdin.write(data)
        return await self.expect(marker)


async def open_shell(connection: asyncssh.SSHClientConnection) -> ShellSession:
    process = await connection.create_process(term_type="vt100", encoding=None)
    shell = ShellSession(process)
    await shell.expect(b"] > ")
    return shell


def addresses_of(device: DeviceState) -> list[str]:
    table = device.table("/ip/address")
    assert table is not None
    return [item["address"] for item in table.items]


async def test_ssh_safe_mode_undo_on_ctrl_d(ssh: SshServer, device: DeviceState) -> None:
    """Ctrl-X takes safe mode; Ctrl-D then ends the session and undoes the change."""
    async with connect(ssh, username="admin+ct") as connection:
        shell = await open_shell(connection)
        taken = await shell.type(b"\x18", b"<SAFE> ")
        await shell.type(b"/ip address add address=203.0.113.3/24 interface=ether3\r", b"<SAFE> ")
        during = addresses_of(device)
        shell.process.stdin.write(b"\x04")
        await asyncio.wait_for(shell.process.wait_closed(), TIMEOUT)

    assert b"[Safe Mode taken]" in taken
    assert b"[admin@MikroTik] <SAFE> " in taken
    assert "203.0.113.3/24" in during
    assert "203.0.113.3/24" not in addresses_of(device)


async def test_ssh_safe_mode_undo_on_disconnect(ssh: SshServer, device: DeviceState) -> None:
    """Closing the connection while in safe mode undoes the change, as an abnormal end does."""
    async with connect(ssh, username="admin+ct") as connection:
        shell = await open_shell(connection)
        await shell.type(b"\x18", b"<SAFE> ")
        await shell.type(b"/ip address remove 0\r", b"<SAFE> ")
        during = addresses_of(device)

    async def undone() -> None:
        # The undo runs in the server's session task after the disconnect, which offers no
        # event to await, so the state is polled within the bounded wait.
        while "192.0.2.1/24" not in addresses_of(device):  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(undone(), TIMEOUT)
    assert "192.0.2.1/24" not in during


async def test_ssh_safe_mode_release_and_quit_keep(ssh: SshServer, device: DeviceState) -> None:
    """Releasing safe mode with Ctrl-X, or leaving with /quit, keeps the changes."""
    async with connect(ssh, username="admin+ct") as connection:
        shell = await open_shell(connection)
        await shell.type(b"\x18", b"<SAFE> ")
        await shell.type(b"/ip address add address=203.0.113.4/24 interface=ether3\r", b"<SAFE> ")
        released = await shell.type(b"\x18", b"] > ")
        shell.process.stdin.write(b"\x04")
        await asyncio.wait_for(shell.process.wait_closed(), TIMEOUT)
    async with connect(ssh, username="admin+ct") as connection:
        shell = await open_shell(connection)
        await shell.type(b"\x18", b"<SAFE> ")
        await shell.type(b"/ip address add address=203.0.113.5/24 interface=ether3\r", b"<SAFE> ")
        shell.process.stdin.write(b"/quit\r")
        await asyncio.wait_for(shell.process.wait_closed(), TIMEOUT)

    assert b"[Safe Mode released]" in released
    assert "203.0.113.4/24" in addresses_of(device)
    assert "203.0.113.5/24" in addresses_of(device)


async def test_ssh_safe_mode_f4_and_new_wording() -> None:
    """On 7.21 F4 takes safe mode and the console prints the newer taking message."""
    device = make_device("7.21")
    server = await start_ssh(device, license_prompt=False)
    try:
        async with connect(server, username="admin+ct") as connection:
            shell = await open_shell(connection)
            taken = await shell.type(b"\x1bOS", b"<SAFE> ")
            moved = await shell.type(b"/ip address\r", b"<SAFE> ")
            shell.process.close()
    finally:
        await server.stop()

    assert b"Taking Safe Mode session... Success!" in taken
    assert b"[admin@MikroTik] /ip address<SAFE> " in moved


async def test_ssh_safe_mode_hijack_unrolls(ssh: SshServer, device: DeviceState) -> None:
    """A second session taking safe mode is asked; ``u`` undoes the first session's changes."""
    async with connect(ssh, username="admin+ct") as first, connect(ssh, username="admin+ct") as second:
        holder = await open_shell(first)
        await holder.type(b"\x18", b"<SAFE> ")
        await holder.type(b"/ip address add address=203.0.113.6/24 interface=ether3\r", b"<SAFE> ")
        taker = await open_shell(second)
        question = await taker.type(b"\x18", b"[u/r/d]: ")
        taken = await taker.type(b"u", b"<SAFE> ")

        assert b"Hijacking Safe Mode from someone - unroll/release/don't take it [u/r/d]: " in question
        assert b"[Safe Mode taken]" in taken
        assert "203.0.113.6/24" not in addresses_of(device)


async def test_ssh_safe_mode_overflow_drops_silently(ssh: SshServer, device: DeviceState) -> None:
    """More than 100 changes leave safe mode without undo, so Ctrl-D keeps them."""
    renames = "; ".join(f"/system identity set name=step{number}" for number in range(101))
    async with connect(ssh, username="admin+ct") as connection:
        shell = await open_shell(connection)
        await shell.type(b"\x18", b"<SAFE> ")
        after = await shell.type(renames.encode() + b"\r", b"] > ")
        shell.process.stdin.write(b"\x04")
        await asyncio.wait_for(shell.process.wait_closed(), TIMEOUT)

    identity = device.table("/system/identity")
    assert identity is not None
    assert identity.items[0]["name"] == "step100"
    assert b"<SAFE>" not in after.rsplit(b"\r\n", 1)[-1]


async def test_ssh_new_password_dialog_on_7_21() -> None:
    """RouterOS 7.21 asks for a new password while it is empty; exec requests are not asked."""
    device = DeviceState.factory("7.21", admin_password="")
    server = await start_ssh(device, license_prompt=False)
    try:
        exec_output = await run(server, "/system identity print", password="")
        async with connect(server, username="admin+ct", password="") as connection:
            process = await connection.create_process(term_type="vt100", encoding=None)
            shell = ShellSession(process)
            await shell.expect(b"new password> ")
            await shell.type(b"fresh-secret\r", b"repeat new password> ")
            changed = await shell.type(b"fresh-secret\r", b"] > ")
            process.close()
    finally:
        await server.stop()

    assert exec_output == b"  name: MikroTik\r\n"
    assert b"password changed" in changed
    assert b"fresh-secret" not in changed
    assert device.authenticate("admin", "fresh-secret") is not None


async def test_ssh_reboot_asks_for_confirmation(ssh: SshServer, device: DeviceState) -> None:
    """Reboot asks ``Reboot, yes? [y/N]:``; ``n`` or end of input keeps the device up, ``y`` reboots."""
    reboots: list[bool] = []
    device.add_reboot_listener(lambda: reboots.append(True))

    async with connect(ssh) as connection:
        declined = await asyncio.wait_for(connection.run("/system reboot", input=b"n", encoding=None), TIMEOUT)
        process = await connection.create_process("/system reboot", encoding=None)
        process.stdin.write_eof()
        silent = await asyncio.wait_for(process.wait(), TIMEOUT)
    count_before = len(reboots)
    async with connect(ssh, username="admin+ct") as connection:
        shell = await open_shell(connection)
        question = await shell.type(b"/system reboot\r", b"[y/N]: ")
        shell.process.stdin.write(b"y")
        await asyncio.wait_for(shell.process.wait_closed(), TIMEOUT)

    assert declined.stdout == b"Reboot, yes? [y/N]: \r\n"
    assert silent.stdout == b"Reboot, yes? [y/N]: \r\n"
    assert count_before == 0
    assert b"Reboot, yes? [y/N]: " in question
    assert reboots == [True]



async def test_ssh_flags_and_unset_words(ssh: SshServer, device: DeviceState) -> None:
    """Bare flags set a flag property, ``!name`` unsets one, and print shows flags bare."""
    await run(ssh, "/routing table add name=vrf-lab fib; /ip address set 0 !comment")
    with_flag = await text(ssh, "/routing table print terse")
    await run(ssh, "/routing table set vrf-lab !fib")
    without_flag = await text(ssh, "/routing table print terse")

    addresses = device.table("/ip/address")
    assert addresses is not None
    assert "comment" not in addresses.items[0]
    assert with_flag.splitlines()[0].endswith("name=vrf-lab fib")
    assert without_flag.splitlines()[0].endswith("name=vrf-lab")


async def test_ssh_refuse_logins_fault(device: DeviceState) -> None:
    """With logins refused, the right password is rejected until the fault is cleared."""
    faults = Faults()
    server = SshServer(device, faults=faults)
    await server.start()
    try:
        faults.refuse_logins = True
        with pytest.raises(asyncssh.PermissionDenied):
            async with connect(server):
                pass
        faults.refuse_logins = False
        output = await run(server, "/system identity print")
    finally:
        await server.stop()

    assert output == b"  name: MikroTik\r\n"


async def test_ssh_get_reads_one_property(ssh: SshServer) -> None:
    """``get`` prints one property of a singleton or of a named or numbered item."""
    identity = await text(ssh, "/system identity get name")
    version = await text(ssh, ":put [/system resource get version]")
    by_name = await text(ssh, "/interface ethernet get ether2 mtu")
    by_number = await text(ssh, "/interface print; /interface get 1 name")
    missing = await text(ssh, "/interface get ether9 mtu")

    assert identity == "MikroTik\n"
    assert version.startswith("7.19")
    assert by_name == "1500\n"
    assert by_number.endswith("ether2\n")
    assert missing == "no such item\n"


async def test_ssh_cursor_sequence_unless_dumb(ssh: SshServer) -> None:
    """Shells get ``ESC [9999B`` before the prompt; the dumb terminal (``+e``) gets none."""
    async with connect(ssh, username="admin+ct") as connection:
        full = await open_shell(connection)
        full_prompt = await full.type(b"\r", b"] > ")
        full.process.close()
    async with connect(ssh, username="admin+cet") as connection:
        dumb = await open_shell(connection)
        dumb_prompt = await dumb.type(b"\r", b"] > ")
        dumb.process.close()

    assert b"\x1b[9999B[admin@MikroTik] > " in full_prompt
    assert b"\x1b[" not in dumb_prompt


async def test_ssh_export_where_filters_menu(ssh: SshServer) -> None:
    """From 7.13 ``export where`` inside a menu exports only the matching items."""
    await run(ssh, "/ip firewall address-list add list=keep address=192.0.2.30; "
                   "/ip firewall address-list add list=skip address=192.0.2.31")

    filtered = await text(ssh, "/ip firewall address-list export where list=keep")
    at_root = await text(ssh, "/export where list=keep")

    assert "address=192.0.2.30" in filtered
    assert "192.0.2.31" not in filtered
    assert at_root == "expected end of command (line 1 column 9)\n"


async def test_ssh_ping_and_monitor_traffic(ssh: SshServer) -> None:
    """The console pings with a count and shows one round of traffic counters."""
    pinged = await text(ssh, "/ping 192.0.2.20 count=2")
    lost = await text(ssh, "/tool ping address=203.0.113.1 count=1")
    monitored = await text(ssh, "/interface monitor-traffic ether2 once")

    assert pinged.splitlines()[0].split() == ["SEQ", "HOST", "SIZE", "TTL", "TIME", "STATUS"]
    assert pinged.splitlines()[-1].strip().startswith("sent=2 received=2 packet-loss=0%")
    assert "timeout" in lost
    assert "packet-loss=100%" in lost
    assert re.search(r"^ +name: ether2$", monitored, re.MULTILINE)
    assert re.search(r"^ +tx-bits-per-second: 0$", monitored, re.MULTILINE)
