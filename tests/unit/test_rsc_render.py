"""Renderer behaviour: quoting, escapes, wrapping, header and terse style."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from routeros.rsc import (
    ExportHeader,
    RscCommand,
    parse_export,
    render_export,
    sections_from_commands,
)
from routeros.rsc.render import format_export_date

FIXED_HEADER = ExportHeader(date="2025-06-01 08:12:10", version="7.19")


def render_body(command: RscCommand, *, style: str = "compact") -> list[str]:
    """Render one command under its path and return the lines after the header."""
    text = render_export([(command.path, [command])], style=style, header=FIXED_HEADER)
    return text.splitlines()[1:]


def test_rsc_render_compact_uses_menu_header():
    """Compact style writes the menu in CLI form on its own line."""
    command = RscCommand(
        "/ip/firewall/filter", "add", properties=[("action", "drop"), ("chain", "input")]
    )

    assert render_body(command) == ["/ip firewall filter", "add action=drop chain=input"]


def test_rsc_render_terse_puts_path_on_each_line():
    """Terse style writes the menu path before every command."""
    command = RscCommand("/ip/address", "add", properties=[("address", "10.0.0.1/24")])

    assert render_body(command, style="terse") == ["/ip address add address=10.0.0.1/24"]


def test_rsc_render_selector_and_flags():
    """Selectors follow the verb, flags and unset properties stay bare."""
    commands = [
        RscCommand(
            "/interface/ethernet",
            "set",
            "[ find default-name=ether1 ]",
            properties=[("mtu", "1500")],
        ),
        RscCommand("/system/logging", "set", "0", properties=[("action", "remote")]),
        RscCommand("/routing/table", "add", properties=[("fib", None), ("name", "isp")]),
        RscCommand("/interface/6to4", "add", properties=[("!keepalive", None), ("name", "sit1")]),
    ]

    lines = [render_body(command)[1] for command in commands]

    assert lines == [
        "set [ find default-name=ether1 ] mtu=1500",
        "set 0 action=remote",
        "add fib name=isp",
        "add !keepalive name=sit1",
    ]


def test_rsc_render_quotes_plain_selector_with_space():
    """A plain item name with a space is quoted so that it stays one selector."""
    command = RscCommand(
        "/interface/bridge", "set", "main infrastructure", properties=[("mtu", "1500")]
    )

    rendered = render_body(command)[1]

    assert rendered == 'set "main infrastructure" mtu=1500'
    assert (
        parse_export("/interface bridge\n" + rendered).commands[0].selector
        == '"main infrastructure"'
    )


def test_rsc_render_selector_from_filter():
    """A command with only a filter gets a '[ find ... ]' selector."""
    command = RscCommand(
        "/interface", "set", selector_filter={"name": "lan A"}, properties=[("mtu", "1400")]
    )

    assert render_body(command)[1] == 'set [ find name="lan A" ] mtu=1400'


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("ether1", "ether1"),
        ("!NEW", "!NEW"),
        ("***INPUT***", "***INPUT***"),
        ("sfp28-1<-PCSS", "sfp28-1<-PCSS"),
        ("#1-field", "#1-field"),
        ("::ffff:0.0.0.0/96", "::ffff:0.0.0.0/96"),
        ("netops@example.org", "netops@example.org"),
        ("", '""'),
        ("a b", '"a b"'),
        ("accept;", '"accept;"'),
        ("'cap'", "\"'cap'\""),
        ("a=b", '"a=b"'),
        ("$x", '"\\$x"'),
        ("why?", '"why\\?"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\dir", '"C:\\\\dir"'),
        ("[find]", '"[find]"'),
        ("{x}", '"{x}"'),
        ("(x)", '"(x)"'),
        ("`x`", '"`x`"'),
        ("a\tb\r\n", '"a\\tb\\r\\\n    \\n"'),
    ],
)
def test_rsc_render_quotes_only_when_needed(value: str, written: str):
    """Values are quoted and escaped only when RouterOS would do so."""
    command = RscCommand("/interface", "set", "ether1", properties=[("comment", value)])

    body = "\n".join(render_body(command)[1:])

    assert body == f"set ether1 comment={written}"


def test_rsc_render_non_ascii_as_uppercase_hex():
    """Each non-ASCII byte becomes one uppercase '\\HH' escape."""
    utf8 = RscCommand("/interface", "set", "ether1", properties=[("comment", "Рез")])
    cp1251 = RscCommand(
        "/interface",
        "set",
        "ether1",
        properties=[("comment", b"\xd0\xe0\xe7".decode("utf-8", "surrogateescape"))],
    )

    assert render_body(utf8)[1] == 'set ether1 comment="\\D0\\A0\\D0\\B5\\D0\\B7"'
    assert render_body(cp1251)[1] == 'set ether1 comment="\\D0\\E0\\E7"'


def test_rsc_render_control_bytes_as_hex():
    """Control bytes other than tab, CR and LF are written as '\\HH'."""
    command = RscCommand(
        "/interface", "set", "ether1", properties=[("comment", "\x07\x0c\x7f\xff")]
    )

    assert render_body(command)[1] == 'set ether1 comment="\\07\\0C\\7F\\C3\\BF"'


def test_rsc_render_dotted_shorthand():
    """Consecutive properties with the same dotted prefix use the '.name' shorthand."""
    command = RscCommand(
        "/routing/bgp/template",
        "add",
        properties=[
            ("input.filter", "IN"),
            ("output.filter-chain", "OUT"),
            ("output.network", "nets"),
            ("router-id", "10.0.0.1"),
            ("output.redistribute", "connected"),
        ],
    )

    assert render_body(command, style="terse") == [
        "/routing bgp template add input.filter=IN output.filter-chain=OUT .network=nets "
        "router-id=10.0.0.1 output.redistribute=connected"
    ]


def test_rsc_render_wraps_between_tokens():
    """A property that does not fit moves to a 4-space indented line after ' \\'."""
    command = RscCommand(
        "/ip/firewall/filter",
        "add",
        properties=[
            ("action", "accept"),
            ("chain", "forward"),
            ("comment", "!NEW WAN to Printers"),
            ("connection-state", "established,related"),
            ("dst-address", "10.70.0.0/24"),
            ("in-interface-list", "WAN"),
        ],
    )

    assert render_body(command)[1:] == [
        'add action=accept chain=forward comment="!NEW WAN to Printers" \\',
        "    connection-state=established,related dst-address=10.70.0.0/24 \\",
        "    in-interface-list=WAN",
    ]


def test_rsc_render_wraps_after_equals():
    """When 'key=' still fits but the value does not, the line breaks after '='."""
    command = RscCommand(
        "/ip/dhcp-server/network",
        "add",
        properties=[
            ("address", "10.70.0.0/24"),
            ("dns-server", "10.70.0.1"),
            ("gateway", "10.70.0.1"),
            ("ntp-server", "10.70.0.1"),
        ],
    )

    assert render_body(command)[1:] == [
        "add address=10.70.0.0/24 dns-server=10.70.0.1 gateway=10.70.0.1 ntp-server=\\",
        "    10.70.0.1",
    ]


def test_rsc_render_splits_long_quoted_value():
    """A quoted value longer than the line is split mid-token at column 79."""
    advertise = "10M-half,10M-full,100M-half,100M-full,1000M-half,1000M-full,2500M-full,5000M-full,10000M-full"
    command = RscCommand(
        "/interface/ethernet",
        "set",
        "[ find default-name=ether1 ]",
        properties=[
            ("advertise", advertise),
            ("disable-running-check", "no"),
            ("name", "ether1-MGMT"),
        ],
    )

    assert render_body(command)[1:] == [
        'set [ find default-name=ether1 ] advertise="10M-half,10M-full,100M-half,100M-f\\',
        '    ull,1000M-half,1000M-full,2500M-full,5000M-full,10000M-full" \\',
        "    disable-running-check=no name=ether1-MGMT",
    ]


def test_rsc_render_quotes_overlong_unquoted_value():
    """An unquoted value longer than a line is quoted in compact style so it can split."""
    value = ",".join(f"mcs-{index}" for index in range(24))
    command = RscCommand(
        "/interface/wireless", "set", "0", properties=[("ht-supported-mcs", value)]
    )

    lines = render_body(command)
    terse = render_body(command, style="terse")

    assert lines[1].startswith('set 0 ht-supported-mcs="mcs-0,')
    assert all(len(line) <= 79 for line in lines)
    assert terse == [f"/interface wireless set 0 ht-supported-mcs={value}"]


def test_rsc_render_breaks_before_each_newline():
    """Multi-line strings start every '\\n' on a new line, also in terse style."""
    command = RscCommand(
        "/system/script", "add", properties=[("name", "s"), ("source", "\r\n:put 1\r\n:put 2")]
    )

    assert render_body(command, style="terse") == [
        '/system script add name=s source="\\r\\',
        "    \\n:put 1\\r\\",
        '    \\n:put 2"',
    ]


def test_rsc_render_escapes_space_at_line_start():
    """A space that lands at the start of a continuation line is written '\\_'."""
    value = "x" * 66 + " " + "y" * 20
    command = RscCommand("/system/script", "add", properties=[("source", value)])

    lines = render_body(command)

    assert lines[1] == 'add source="' + "x" * 66 + "\\"
    assert lines[2] == "    \\_" + "y" * 20 + '"'
    assert parse_export("\n".join(lines)).commands[0].get("source") == value


def test_rsc_render_lines_fit_79_columns():
    """No compact line is longer than 79 characters when the verb and selector fit."""
    properties = [(f"prop-{index}", "v" * (index * 7 % 50)) for index in range(30)]
    command = RscCommand("/ip/dns", "set", properties=properties)

    lines = render_body(command)

    assert max(len(line) for line in lines) <= 79
    assert parse_export("\n".join(lines)).commands[0].properties == properties


def test_rsc_render_header_v7():
    """A RouterOS 7 header writes software id, model and serial."""
    header = ExportHeader(
        date="2025-06-01 08:12:10",
        version="7.19rc2",
        software_id="57Z4-PE7K",
        model="CCR2216",
        serial="BEU1",
    )

    text = render_export([], header=header)

    assert text.splitlines() == [
        "# 2025-06-01 08:12:10 by RouterOS 7.19rc2",
        "# software id = 57Z4-PE7K",
        "#",
        "# model = CCR2216",
        "# serial number = BEU1",
    ]
    assert parse_export(text).header == header


def test_rsc_render_header_v6_chr():
    """A RouterOS 6 CHR header has an empty software id and three '#' lines."""
    header = ExportHeader(date="feb/28/2021 16:11:44", version="6.48.1", software_id="")

    text = render_export([], header=header)

    assert text == "# feb/28/2021 16:11:44 by RouterOS 6.48.1\n# software id = \n#\n#\n#\n"
    assert parse_export(text).header == header


def test_rsc_render_header_system_id():
    """A header with a system id writes it and parses back."""
    header = ExportHeader(date="2025-03-01 10:00:00", version="7.18.2", system_id="abcDEF12345")

    text = render_export([], header=header)

    assert "# system id = abcDEF12345" in text.splitlines()
    assert parse_export(text).header == header


def test_rsc_render_header_date_by_version():
    """Without a date the header uses the current time in the version's date format."""
    before_iso = render_export([], version="7.9.1").splitlines()[0]
    iso = render_export([], version="7.10rc1").splitlines()[0]

    assert before_iso.endswith(" by RouterOS 7.9.1")
    assert before_iso[2:5].islower()
    assert before_iso[5] == "/"
    assert iso.endswith(" by RouterOS 7.10rc1")
    assert iso[6] == "-"


def test_rsc_format_export_date_switches_at_7_10():
    """Dates switch from 'jun/07/2023' to ISO form at RouterOS 7.10."""
    moment = datetime(2023, 6, 7, 23, 47, 16, tzinfo=UTC)

    assert format_export_date(moment, "6.49.8") == "jun/07/2023 23:47:16"
    assert format_export_date(moment, "7.9.1") == "jun/07/2023 23:47:16"
    assert format_export_date(moment, "7.10rc1") == "2023-06-07 23:47:16"


def test_rsc_render_crlf_line_ending():
    """The line_ending option writes CRLF exports that parse like LF ones."""
    command = RscCommand("/ip/dns", "set", properties=[("servers", "1.1.1.1")])

    text = render_export([("/ip/dns", [command])], header=FIXED_HEADER, line_ending="\r\n")

    assert text.endswith("set servers=1.1.1.1\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert parse_export(text).commands[0].properties == [("servers", "1.1.1.1")]


def test_rsc_sections_from_commands_groups_runs():
    """Consecutive commands with one path form a section and order is kept."""
    commands = [
        RscCommand("/ip/dhcp-server", "add", properties=[("name", "a")]),
        RscCommand("/ip/dhcp-server", "add", properties=[("name", "b")]),
        RscCommand("/ip/pool", "add", properties=[("name", "p")]),
        RscCommand("/ip/dhcp-server", "add", properties=[("name", "c")]),
    ]

    sections = sections_from_commands(commands)

    assert [(path, len(group)) for path, group in sections] == [
        ("/ip/dhcp-server", 2),
        ("/ip/pool", 1),
        ("/ip/dhcp-server", 1),
    ]


@pytest.mark.parametrize(
    ("command", "hint"),
    [
        (RscCommand("ip/dns", "set", properties=[("a", "b")]), "invalid menu path"),
        (RscCommand("/ip/dns", "set", properties=[("bad key", "b")]), "invalid property name"),
        (RscCommand("/ip/dns", "set", properties=[("!key", "b")]), "invalid property name"),
        (RscCommand("/ip/dns", "Set", properties=[("a", "b")]), "invalid command verb"),
        (RscCommand("/ip/route", "add", "0", properties=[("a", "b")]), "takes no item selector"),
        (
            RscCommand("/ip/route", "set", properties=[("blackhole", None)]),
            "would read as an item selector",
        ),
        (RscCommand("/ip/dns", "set", properties=[("a", "\ud800")]), "not valid UTF-8"),
    ],
)
def test_rsc_render_rejects_unwritable_commands(command: RscCommand, hint: str):
    """Commands that cannot be written so that they read back the same raise ValueError."""
    with pytest.raises(ValueError, match=hint):
        render_export([(command.path, [command])], header=FIXED_HEADER)


def test_rsc_render_rejects_unknown_style():
    """An unknown style raises ValueError naming the valid ones."""
    with pytest.raises(ValueError, match="'compact' or 'terse'"):
        render_export([], style="verbose")


def test_rsc_render_rejects_unknown_line_ending():
    """A line ending other than LF or CRLF raises ValueError."""
    with pytest.raises(ValueError, match="invalid line ending"):
        render_export([], line_ending="\r")


def test_rsc_render_rejects_line_break_in_header():
    """A header field with a line break raises instead of injecting a command line."""
    with pytest.raises(ValueError, match="header field model"):
        render_export([], header=ExportHeader(model="x\n/system reset-configuration"))
    with pytest.raises(ValueError, match="version argument"):
        render_export([], version="7.19\n/ip dns set servers=1.1.1.1")
