"""Parse, check and round-trip real RouterOS exports and the simulator's samples.

The real exports live outside the repository. When that folder is missing the tests
loop over no real exports but still check every ``simulator/samples/*.rsc`` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from routeros.rsc import (
    ParsedExport,
    RscCommand,
    parse_export,
    render_export,
    sections_from_commands,
)

REPOSITORY = Path(__file__).resolve().parents[2]
EXPORTS = REPOSITORY.parent / "shared" / "data" / "exports"
SAMPLES = REPOSITORY / "simulator" / "samples"


@dataclass(frozen=True)
class ExportFacts:
    """Numbers the exports' README states for one file."""

    lines: int
    path_lines: int
    add_commands: int
    continuation_lines: int
    style: str
    errors: int


FACTS = {
    "v6.48-compact-campus-router.rsc": ExportFacts(301, 32, 107, 122, "compact", 2),
    "v7.19-terse-isp-edge.rsc": ExportFacts(517, 512, 482, 0, "terse", 0),
    "v7.20-terse-capsman-ap.rsc": ExportFacts(1716, 127, 83, 1576, "terse", 0),
}


def real_exports() -> list[Path]:
    """Return the real export files that are present."""
    return sorted(EXPORTS.glob("*.rsc")) if EXPORTS.is_dir() else []


def all_exports() -> list[Path]:
    """Return the real exports and the simulator's sample exports that are present."""
    samples = sorted(SAMPLES.glob("*.rsc")) if SAMPLES.is_dir() else []
    return real_exports() + samples


def load(name: str) -> ParsedExport | None:
    """Parse the named real export, or return None when it is not present."""
    path = EXPORTS / name
    return parse_export(path.read_bytes()) if path.is_file() else None


def find(parsed: ParsedExport, path: str, **expected: str) -> RscCommand:
    """Return the first command under ``path`` whose properties include ``expected``."""
    for command in parsed.commands:
        if command.path == path and all(
            command.get(key) == value for key, value in expected.items()
        ):
            return command
    raise AssertionError(f"no command under {path} with {expected}")


def comparable(commands: list[RscCommand]) -> list[tuple]:
    """Return what a round trip must keep: path, verb, selector, filter and properties."""
    return [
        (command.path, command.verb, command.selector, command.selector_filter, command.properties)
        for command in commands
    ]


def test_rsc_exports_match_stated_numbers():
    """Each real export parses, and its counts match the README."""
    for path in real_exports():
        facts = FACTS.get(path.name)
        data = path.read_bytes()
        parsed = parse_export(data)
        if facts is None:
            continue
        physical = data.replace(b"\r\n", b"\n").split(b"\n")[:-1]

        assert len(physical) == facts.lines, path.name
        assert sum(line.startswith(b"/") for line in physical) == facts.path_lines, path.name
        assert sum(line.endswith(b"\\") for line in physical) == facts.continuation_lines, path.name
        assert sum(command.verb == "add" for command in parsed.commands) == facts.add_commands, (
            path.name
        )
        assert parsed.style == facts.style, path.name
        assert len(parsed.errors) == facts.errors, path.name


def test_rsc_exports_path_lines_become_commands_or_sections():
    """Compact path lines open one section each, and terse path lines carry one command each."""
    compact = load("v6.48-compact-campus-router.rsc")
    isp = load("v7.19-terse-isp-edge.rsc")
    capsman = load("v7.20-terse-capsman-ap.rsc")

    if compact is not None:
        assert len(sections_from_commands(compact.commands)) == 32
    if isp is not None:
        assert len(isp.commands) == 512
    if capsman is not None:
        # Three path-only lines are each followed by one relative 'set'.
        assert len(capsman.commands) == 127


def test_rsc_export_v6_tricky_values():
    """The v6 compact export decodes wrapped, escaped and unusual values correctly."""
    parsed = load("v6.48-compact-campus-router.rsc")
    if parsed is None:
        return

    assert parsed.header.date == "feb/28/2021 16:11:44"
    assert parsed.header.version == "6.48.1"
    assert parsed.header.software_id == ""
    assert parsed.errors == [
        "#error exporting /interface bridge calea",
        "#error exporting /ip firewall calea",
    ]

    ether1 = parsed.commands[1]
    assert ether1.selector_filter == {"default-name": "ether1"}
    assert ether1.get("advertise") == (
        "10M-half,10M-full,100M-half,100M-full,1000M-half,1000M-full,2500M-full,5000M-full,10000M-full"
    )
    assert find(parsed, "/interface/ethernet", name="sfpplus1<-MDF-AGG-01->qsfp2-1").verb == "set"

    netwatch = find(parsed, "/tool/netwatch", host="8.8.8.8")
    down_script = netwatch.get("down-script") or ""
    assert down_script.startswith(
        "ip route disable [find dst-address=0.0.0.0/0 gateway=203.0.113.1]\r\n"
    )
    assert ':log error "PCSS\' link is down!"\r\n' in down_script

    backup = find(parsed, "/system/script", name="Backup")
    source = backup.get("source") or ""
    assert "[:pick $time 3 5])\r\n" in source
    assert '/export file="$hostname_$datetimestring.rsc"\r\n' in source
    assert source.endswith("\r\nquit")

    assert (
        find(parsed, "/ip/firewall/filter", comment="!NEW").get("connection-state")
        == "established,related"
    )
    assert find(parsed, "/ip/firewall/filter", comment="***INPUT***").get("action") == "passthrough"
    assert find(parsed, "/system/logging", topics="!snmp,!dns").verb == "add"
    assert find(parsed, "/system/logging/action", remote="10.21.37.20").selector == "3"
    assert (
        find(parsed, "/ip/neighbor/discovery-settings").get("discover-interface-list") == "!dynamic"
    )
    assert [command.selector for command in parsed.commands if command.path == "/system/logging"][
        :4
    ] == [
        "0",
        "1",
        "2",
        "3",
    ]


def test_rsc_export_v7_isp_edge_tricky_values():
    """The v7.19 terse export decodes shorthand, flags, dangling ids and filter programs."""
    parsed = load("v7.19-terse-isp-edge.rsc")
    if parsed is None:
        return

    assert parsed.header.date == "2025-06-01 08:12:10"
    assert parsed.header.version == "7.19rc2"
    assert parsed.header.model == "CCR2216-1G-12XS-2XQ"

    template = find(parsed, "/routing/bgp/template", name="AMSIX-BAN-v4")
    assert template.get("output.filter-chain") == "AMSIX-BAN-OUT-v4"
    assert template.get("output.network") == "ipv4-apnic-netco"
    assert template.get("output.remove-private-as") == "yes"
    assert template.get("input.filter") == "AMSIX-BAN-IN-v4"
    connection = find(parsed, "/routing/bgp/connection", name="HGC-SG-PRIMARY-v4")
    assert connection.get("remote.as") == "65101"
    assert connection.get("local.role") == "ebgp"

    assert find(parsed, "/routing/table", name="rt_latency").properties[0] == ("fib", None)
    assert any(
        ("blackhole", None) in command.properties
        for command in parsed.commands
        if command.path == "/ip/route"
    )
    assert any(
        ("passive", None) in command.properties
        for command in parsed.commands
        if command.path == "/routing/ospf/interface-template"
    )

    assert find(parsed, "/interface/bridge/port", bridge="*64").get("interface") == "ether1"
    assert find(parsed, "/ip/dhcp-client", interface="*17").get("comment") == "defconf"

    rule = find(parsed, "/routing/filter/rule", comment="Discard default IPv4 route")
    assert rule.get("rule") == "if (dst == 0.0.0.0/0) { reject; }"
    assert (
        find(parsed, "/ip/firewall/raw", comment="lock UDP 53").get("src-address-list")
        == "!dns-clients"
    )
    assert (
        find(parsed, "/ip/firewall/raw", comment="invalid TCP flags").get("tcp-flags")
        == "!fin,!syn,!rst,!ack"
    )
    assert find(
        parsed, "/ipv6/firewall/address-list", list="ipv6-bogons", address="::ffff:0.0.0.0/96"
    )

    assert find(parsed, "/ip/ipsec/profile").selector_filter == {"default": "yes"}
    assert find(parsed, "/port").selector == "0"
    assert find(parsed, "/interface/ethernet/switch").selector == "0"
    service = next(command for command in parsed.commands if command.selector == "ssh")
    assert "2001:db8:f4f9:fbcd::/64,192.0.2.40/32" in (service.get("address") or "")


def test_rsc_export_v7_capsman_tricky_values():
    """The v7.20 export handles path-only lines, long scripts and nested escapes."""
    parsed = load("v7.20-terse-capsman-ap.rsc")
    if parsed is None:
        return

    wireless = [command for command in parsed.commands if command.path == "/interface/wireless"]
    assert [command.selector_filter for command in wireless] == [
        {"default-name": "wlan1"},
        {"default-name": "wlan2"},
    ]
    assert wireless[0].get("name") == "wlan 2Ghz"
    cap = find(parsed, "/interface/wireless/cap")
    assert cap.get("interfaces") == "wlan 2Ghz,wlan 5Ghz"

    assert find(parsed, "/interface/bridge").get("name") == "main infrastructure"
    assert find(parsed, "/ip/dhcp-client/option", name="classid").get("value") == "'mikrotik-cap'"
    assert find(parsed, "/system/logging", action="OnScreenLog").selector == "0"
    read_group = next(command for command in parsed.commands if command.selector == "read")
    assert (read_group.get("policy") or "").endswith(",!ftp,!reboot,!write,!policy,!sensitive")

    telegram = find(parsed, "/system/script", name="doTelegramNotify")
    source = telegram.get("source") or ""
    assert source.startswith("\r\n:global globalScriptBeforeRun;\r\n")
    assert '/sendMessage\\?chat_id=$TelegramGroupID";\r\n' in source


def test_rsc_exports_round_trip_compact_and_terse():
    """parse(render(parse(x))) keeps every command for compact and terse rendering."""
    for path in all_exports():
        parsed = parse_export(path.read_bytes())
        sections = sections_from_commands(parsed.commands)

        for style in ("compact", "terse"):
            text = render_export(sections, style=style, header=parsed.header)
            again = parse_export(text)

            assert comparable(again.commands) == comparable(parsed.commands), (path.name, style)
            assert again.header == parsed.header, (path.name, style)
            assert again.style == style, (path.name, style)


def test_rsc_exports_compact_lines_fit_79_columns():
    """Compact rendering of every export keeps lines within 79 characters."""
    for path in all_exports():
        parsed = parse_export(path.read_bytes())
        text = render_export(sections_from_commands(parsed.commands), header=parsed.header)

        too_long = [line for line in text.splitlines() if len(line) > 79]
        assert too_long == [], path.name


def test_rsc_export_v6_renders_byte_for_byte():
    """Compact rendering reproduces the v6 export apart from its '#error' lines."""
    path = EXPORTS / "v6.48-compact-campus-router.rsc"
    if not path.is_file():
        return
    original = path.read_text()
    parsed = parse_export(original)

    text = render_export(sections_from_commands(parsed.commands), header=parsed.header)

    expected = "".join(
        line for line in original.splitlines(keepends=True) if not line.startswith("#error")
    )
    assert text == expected


def test_rsc_export_v7_terse_renders_byte_for_byte():
    """Terse rendering reproduces the v7.19 export, CRLF line endings included."""
    path = EXPORTS / "v7.19-terse-isp-edge.rsc"
    if not path.is_file():
        return
    original = path.read_bytes()
    parsed = parse_export(original)

    text = render_export(
        sections_from_commands(parsed.commands),
        style="terse",
        header=parsed.header,
        line_ending="\r\n",
    )

    assert text.encode() == original
