"""Parser behaviour on small hand-written export snippets."""

from __future__ import annotations

import pytest

from routeros.rsc import ExportHeader, RscCommand, RscSyntaxError, parse_export


def only_command(text: str) -> RscCommand:
    """Parse ``text`` and return its single command."""
    parsed = parse_export(text)
    assert len(parsed.commands) == 1, parsed.commands
    return parsed.commands[0]


def test_rsc_compact_path_header_applies_to_commands():
    """A menu header line in CLI form sets the API path of the commands below it."""
    parsed = parse_export("/ip firewall filter\nadd action=drop chain=input\n")

    command = parsed.commands[0]
    assert command.path == "/ip/firewall/filter"
    assert command.verb == "add"
    assert command.selector is None
    assert command.properties == [("action", "drop"), ("chain", "input")]
    assert command.line == 2
    assert parsed.style == "compact"


def test_rsc_terse_line_carries_path_and_verb():
    """A terse line splits into menu path, verb and properties."""
    parsed = parse_export(
        "/ip address add address=10.0.0.1/24 interface=ether1\n"
        "/ip address add address=10.0.1.1/24 interface=ether2\n"
    )

    assert [command.path for command in parsed.commands] == ["/ip/address", "/ip/address"]
    assert parsed.commands[1].properties == [("address", "10.0.1.1/24"), ("interface", "ether2")]
    assert parsed.style == "terse"


def test_rsc_crlf_and_lf_parse_alike():
    """CRLF line endings give the same commands as LF, with no stray carriage return."""
    text = '/system identity\nset name=core\n/ip dns\nset servers=1.1.1.1 \\\n    comment="a b"\n'

    lf = parse_export(text)
    crlf = parse_export(text.replace("\n", "\r\n"))

    assert crlf.commands == lf.commands
    assert crlf.commands[1].properties == [("servers", "1.1.1.1"), ("comment", "a b")]


def test_rsc_continuation_between_tokens():
    """A trailing ' \\' joins the next line, and its 4-space indent is dropped."""
    command = only_command(
        "/ip dhcp-server\nadd address-pool=Pool-Guest disabled=no \\\n    name=DHCP-Guest\n"
    )

    assert command.properties == [
        ("address-pool", "Pool-Guest"),
        ("disabled", "no"),
        ("name", "DHCP-Guest"),
    ]
    assert command.line == 2


def test_rsc_continuation_with_trailing_spaces():
    """Spaces after a continuation backslash are ignored, as in hand-edited files."""
    command = only_command("/ip dns\nset allow-remote-requests=yes \\  \n    servers=1.1.1.1\n")

    assert command.properties == [("allow-remote-requests", "yes"), ("servers", "1.1.1.1")]


def test_rsc_continuation_after_equals():
    """A wrap right after '=' continues the value on the next line."""
    command = only_command(
        "/ip dhcp-server network\nadd dns-server=1.1.1.1 ntp-server=\\\n    10.70.0.1\n"
    )

    assert command.get("ntp-server") == "10.70.0.1"


def test_rsc_continuation_inside_quoted_value():
    """A wrap mid-token inside quotes adds nothing to the value."""
    command = only_command(
        '/interface ethernet\nset [ find default-name=ether1 ] advertise="10M-half,100M-f\\\n'
        '    ull,1000M-full" name=wan\n'
    )

    assert command.get("advertise") == "10M-half,100M-full,1000M-full"
    assert command.get("name") == "wan"


def test_rsc_continuation_splits_address_in_script():
    """An address split across lines inside a quoted script joins back together."""
    command = only_command(
        '/tool netwatch\nadd down-script="ip route disable [find gateway=203.0.11\\\n'
        '    3.1]\\r\\\n    \\n:log error \\"down\\"" host=8.8.8.8\n'
    )

    assert (
        command.get("down-script")
        == 'ip route disable [find gateway=203.0.113.1]\r\n:log error "down"'
    )


def test_rsc_escaped_space_at_line_start():
    """'\\_' at the start of a continuation line is a space that the indent would lose."""
    command = only_command('/system script\nadd name=a source="[:pick \\$time 3\\\n    \\_5]"\n')

    assert command.get("source") == "[:pick $time 3 5]"


def test_rsc_simple_escapes_decode():
    """Every named escape decodes to its byte."""
    command = only_command(
        '/system script\nadd name=x source="\\"\\\\\\n\\r\\t\\$\\?\\_\\a\\b\\v|"\n'
    )

    assert command.get("source") == '"\\\n\r\t$? \x07\x08\x0b|'


def test_rsc_form_feed_escape_is_ff():
    """'\\f' decodes to byte 0xFF, the reading the parser chose where sources disagree."""
    command = only_command('/system script\nadd name=x source="\\f"\n')

    assert command.get("source", "").encode("utf-8", "surrogateescape") == b"\xff"


def test_rsc_hex_escapes_decode_utf8():
    """Uppercase '\\HH' escapes of UTF-8 bytes decode to the text they spell."""
    command = only_command('/interface\nset ether1 comment="\\D0\\A0\\D0\\B5\\D0\\B7"\n')

    assert command.get("comment") == "Рез"


def test_rsc_hex_escapes_keep_cp1251_bytes():
    """Bytes that are not UTF-8 survive through surrogateescape."""
    command = only_command('/interface\nset ether1 comment="\\D0\\E0\\E7\\F0\\E0"\n')

    value = command.get("comment") or ""
    assert value.encode("utf-8", "surrogateescape") == b"\xd0\xe0\xe7\xf0\xe0"
    assert value.encode("utf-8", "surrogateescape").decode("cp1251") == "Разра"


def test_rsc_hex_escapes_split_by_continuation():
    """A wrap between two '\\HH' escapes keeps the multi-byte character whole."""
    command = only_command('/interface\nset ether1 comment="\\D0\\\n    \\A0x"\n')

    assert command.get("comment") == "Рx"


def test_rsc_raw_non_utf8_bytes_survive():
    """Raw bytes that are not UTF-8 in the file come back unchanged from the value."""
    command = only_command(b'/interface\nset ether1 comment="\xcf\xf0\xe8\xe2\xe5\xf2"\n')

    assert (command.get("comment") or "").encode(
        "utf-8", "surrogateescape"
    ) == b"\xcf\xf0\xe8\xe2\xe5\xf2"


def test_rsc_find_default_name_selector():
    """'set [ find default-name=... ]' keeps the selector text and decodes its filter."""
    command = only_command("/interface ethernet\nset [ find default-name=ether1 ] name=wan\n")

    assert command.selector == "[ find default-name=ether1 ]"
    assert command.selector_filter == {"default-name": "ether1"}
    assert command.properties == [("name", "wan")]


def test_rsc_find_default_yes_selector():
    """'set [ find default=yes ]' decodes to the filter default=yes."""
    command = only_command(
        "/interface wireless security-profiles\nset [ find default=yes ] mode=none\n"
    )

    assert command.selector_filter == {"default": "yes"}


def test_rsc_find_quoted_and_complex_selectors():
    """A quoted find value decodes, and a find with operators has no filter."""
    parsed = parse_export(
        '/interface\nset [ find name="lan A" ] mtu=1500\nset [ find where name~"^e" ] mtu=1400\n'
    )

    assert parsed.commands[0].selector_filter == {"name": "lan A"}
    assert parsed.commands[1].selector == '[ find where name~"^e" ]'
    assert parsed.commands[1].selector_filter is None


def test_rsc_positional_selectors():
    """Positional numbers, raw ids and item names after 'set' are selectors."""
    parsed = parse_export(
        "/system logging\nset 0 action=remote\n/queue type\nset *FFFFFFFE kind=pfifo\n"
        "/ip service\nset telnet disabled=yes\n/routing bgp template\nset default as=65001\n"
    )

    assert [command.selector for command in parsed.commands] == [
        "0",
        "*FFFFFFFE",
        "telnet",
        "default",
    ]
    assert all(command.selector_filter is None for command in parsed.commands)
    assert parsed.commands[2].properties == [("disabled", "yes")]


def test_rsc_set_without_selector():
    """A 'set' on a singleton menu has no selector."""
    command = only_command("/ip dns\nset allow-remote-requests=yes\n")

    assert command.selector is None
    assert command.properties == [("allow-remote-requests", "yes")]


def test_rsc_add_never_takes_selector():
    """A bare word after 'add' is a flag, not a selector."""
    command = only_command("/routing table\nadd fib name=to-isp\n")

    assert command.selector is None
    assert command.properties == [("fib", None), ("name", "to-isp")]


def test_rsc_bare_flags():
    """Flags without '=' keep their place with a None value."""
    parsed = parse_export(
        "/ip route add blackhole disabled=no dst-address=10.0.0.0/8\n"
        "/routing ospf interface-template add area=backbone networks=10.0.0.0/30 passive\n"
    )

    assert parsed.commands[0].properties[0] == ("blackhole", None)
    assert parsed.commands[1].properties[-1] == ("passive", None)


def test_rsc_unset_property_token():
    """A standalone '!name' token is kept as an unset property."""
    command = only_command("/interface 6to4\nadd !keepalive mtu=1280 name=sit1\n")

    assert command.properties[0] == ("!keepalive", None)


def test_rsc_unquoted_values_with_bang_and_star():
    """Unquoted values may start with '!' or '*' and keep them."""
    parsed = parse_export(
        "/ip firewall filter\nadd chain=input comment=!NEW\nadd chain=input comment=***INPUT***\n"
        "/system logging\nadd action=remote topics=!snmp,!dns\n"
        "/interface bridge port\nadd bridge=*64 interface=*17\n"
    )

    assert parsed.commands[0].get("comment") == "!NEW"
    assert parsed.commands[1].get("comment") == "***INPUT***"
    assert parsed.commands[2].get("topics") == "!snmp,!dns"
    assert parsed.commands[3].get("bridge") == "*64"
    assert parsed.commands[3].get("interface") == "*17"


def test_rsc_negated_values():
    """'!'-negated values and lists stay as written."""
    command = only_command(
        "/ip firewall raw add action=drop chain=prerouting src-address-list=!dns-clients "
        "tcp-flags=!fin,!syn\n"
    )

    assert command.get("src-address-list") == "!dns-clients"
    assert command.get("tcp-flags") == "!fin,!syn"


def test_rsc_dotted_prefix_shorthand():
    """'.name' after a dotted property continues that property's prefix."""
    command = only_command(
        "/routing bgp template add as=65001 input.filter=IN output.as-override=no "
        ".filter-chain=OUT .network=nets router-id=10.0.0.1\n"
    )

    assert command.properties == [
        ("as", "65001"),
        ("input.filter", "IN"),
        ("output.as-override", "no"),
        ("output.filter-chain", "OUT"),
        ("output.network", "nets"),
        ("router-id", "10.0.0.1"),
    ]


def test_rsc_dotted_shorthand_after_local_and_remote():
    """Shorthand switches prefix when a new dotted property starts."""
    command = only_command(
        "/routing bgp connection add local.address=10.0.0.1 .role=ebgp remote.address=10.0.0.2 .as=65002\n"
    )

    assert command.get("local.role") == "ebgp"
    assert command.get("remote.as") == "65002"


def test_rsc_quoted_filter_program():
    """Quoted filter rules keep braces, semicolons and '=='."""
    command = only_command(
        '/routing filter rule add chain=IN rule="if (dst-len == 24) { set bgp-local-pref 200; accept; }"\n'
    )

    assert command.get("rule") == "if (dst-len == 24) { set bgp-local-pref 200; accept; }"


def test_rsc_names_with_arrows():
    """Interface names with '<-' and '->' are plain unquoted values."""
    command = only_command(
        "/interface bonding\nadd name=bond1 slaves=\\\n    sfp1<-AGG-01->q2-1,sfp2<-OPL\n"
    )

    assert command.get("slaves") == "sfp1<-AGG-01->q2-1,sfp2<-OPL"


def test_rsc_ipv6_and_mixed_lists():
    """IPv4-mapped prefixes and mixed address lists keep their colons and commas."""
    command = only_command(
        "/ipv6 firewall address-list add address=::ffff:0.0.0.0/96 list=bogons\n"
    )
    service = only_command("/ip service set ssh address=192.0.2.1/32,2001:db8::/64,10.0.0.0/8\n")

    assert command.get("address") == "::ffff:0.0.0.0/96"
    assert service.get("address") == "192.0.2.1/32,2001:db8::/64,10.0.0.0/8"


def test_rsc_quoted_name_and_nested_quotes():
    """Quoted values with spaces and single quotes decode, and '' stays empty."""
    parsed = parse_export(
        '/interface bridge add name="main infrastructure"\n'
        "/ip dhcp-client option add code=60 name=classid value=\"'mikrotik-cap'\"\n"
        '/interface bridge add comment="" name=b2\n'
    )

    assert parsed.commands[0].get("name") == "main infrastructure"
    assert parsed.commands[1].get("value") == "'mikrotik-cap'"
    assert parsed.commands[2].get("comment") == ""


def test_rsc_empty_value_without_quotes():
    """'key=' with nothing after it is an empty string."""
    command = only_command("/system identity\nset name=\n")

    assert command.properties == [("name", "")]


def test_rsc_value_keeps_later_equals():
    """Only the first '=' separates key and value."""
    command = only_command('/system script add name=x source=":put (1=1)"\n')
    unquoted = only_command("/system note set note=a=b\n")

    assert command.get("source") == ":put (1=1)"
    assert unquoted.get("note") == "a=b"


def test_rsc_error_exporting_lines():
    """'#error exporting' lines are collected and do not end the export."""
    parsed = parse_export(
        "/interface bridge\nadd name=br\n#error exporting /interface bridge calea\n"
        '#error exporting "/ip firewall" (timeout)\n/ip dns\nset allow-remote-requests=yes\n'
    )

    assert parsed.errors == [
        "#error exporting /interface bridge calea",
        '#error exporting "/ip firewall" (timeout)',
    ]
    assert len(parsed.commands) == 2


def test_rsc_comment_lines_skipped():
    """Comment lines between commands are not commands and not header lines."""
    parsed = parse_export(
        "# 2025-01-01 00:00:00 by RouterOS 7.19\n/interface wireless\n# managed by CAPsMAN\n"
        "# channel: 2412/20/gn(17dBm), SSID: x\nset [ find default-name=wlan1 ] ssid=x\n"
    )

    assert len(parsed.commands) == 1
    assert parsed.commands[0].path == "/interface/wireless"
    assert parsed.commands[0].line == 5
    assert parsed.header.version == "7.19"


def test_rsc_path_header_twice():
    """A menu that appears again later applies to the commands after it."""
    parsed = parse_export(
        "/ip dhcp-server\nadd name=a\n/ip pool\nadd name=p\n/ip dhcp-server\nadd name=b\n"
    )

    assert [command.path for command in parsed.commands] == [
        "/ip/dhcp-server",
        "/ip/pool",
        "/ip/dhcp-server",
    ]


def test_rsc_path_only_line_in_terse_export():
    """A path-only line in a terse export is followed by relative commands."""
    parsed = parse_export(
        "/interface bridge add name=br\n/interface wireless cap\n# \n"
        "set enabled=yes interfaces=wlan1\n/system identity set name=ap\n"
    )

    assert [command.path for command in parsed.commands] == [
        "/interface/bridge",
        "/interface/wireless/cap",
        "/system/identity",
    ]
    assert parsed.commands[1].selector is None


def test_rsc_slash_path_form_accepted():
    """A path written in API form with slashes parses like the CLI form."""
    command = only_command("/ip/firewall/filter add chain=input\n")

    assert command.path == "/ip/firewall/filter"


def test_rsc_v6_header():
    """A RouterOS 6 header has a lower-case month date and an empty software id."""
    parsed = parse_export(
        "# feb/28/2021 16:11:44 by RouterOS 6.48.1\n# software id = \n#\n#\n#\n/ip dns\nset servers=1.1.1.1\n"
    )

    assert parsed.header == ExportHeader(
        date="feb/28/2021 16:11:44", version="6.48.1", software_id=""
    )


def test_rsc_v7_header_with_model_and_serial():
    """A RouterOS 7 header has an ISO date, software id, model and serial."""
    parsed = parse_export(
        "# 2025-06-01 08:12:10 by RouterOS 7.19rc2\r\n# software id = 57Z4-PE7K\r\n#\r\n"
        "# model = CCR2216-1G-12XS-2XQ\r\n# serial number = BEU19QLPAT0\r\n/ip dns set servers=1.1.1.1\r\n"
    )

    assert parsed.header == ExportHeader(
        date="2025-06-01 08:12:10",
        version="7.19rc2",
        software_id="57Z4-PE7K",
        model="CCR2216-1G-12XS-2XQ",
        serial="BEU19QLPAT0",
    )


def test_rsc_system_id_header():
    """A CHR header from 7.18.1 on names a system id and no software id."""
    parsed = parse_export("# 2025-03-01 10:00:00 by RouterOS 7.18.2\n# system id = abcDEF12345\n")

    assert parsed.header.system_id == "abcDEF12345"
    assert parsed.header.software_id is None
    assert parsed.header.model is None
    assert parsed.commands == []


def test_rsc_missing_header():
    """An export without a header gives a header of None fields."""
    parsed = parse_export("/ip dns\nset servers=1.1.1.1\n")

    assert parsed.header == ExportHeader()


def test_rsc_verbose_style_detected():
    """Many '!name' unset tokens mark a verbose export."""
    parsed = parse_export(
        "/interface ethernet\nset [ find default-name=ether1 ] arp=enabled !bridge mtu=1500\n"
        "set [ find default-name=ether2 ] arp=enabled !bridge mtu=1500\n"
        "/system routerboard settings\nset !power-cycle-ping-address baud-rate=115200\n"
    )

    assert parsed.style == "verbose"


def test_rsc_empty_input():
    """Empty input parses to nothing."""
    parsed = parse_export(b"")

    assert parsed.commands == []
    assert parsed.errors == []
    assert parsed.header == ExportHeader()


@pytest.mark.parametrize(
    ("text", "line", "column", "hint"),
    [
        ('/ip dns\nset servers=1.1.1.1 comment="open\n', 2, 29, "closing '\"'"),
        ("/ip dns\nset servers=1.1.1.1 \\\n", 2, 21, "end of file"),
        ("set name=router\n", 1, 1, "no menu path"),
        ("/interface\nset [ find name=x mtu=1500\n", 2, 5, "closing ']'"),
        ('/ip dns\nset comment="a\\qb"\n', 2, 15, "invalid escape"),
        ('/ip dns\nset comment="\\D"\n', 2, 14, "uppercase hex"),
        ("/routing bgp template\nadd as=1 .network=x\n", 2, 10, "dotted prefix"),
        ('/ip dns\nset "lonely" "value"\n', 2, 14, "no property name"),
        ("/ip route\nadd gateway=10.0.0.1 [ find ]\n", 2, 22, "one item selector"),
        ("/ip address\n=10.0.0.1\n", 2, 1, "expected a command"),
    ],
)
def test_rsc_bad_input_names_position(text: str, line: int, column: int, hint: str):
    """Bad input raises RscSyntaxError naming the line, the column and the fix."""
    with pytest.raises(RscSyntaxError) as caught:
        parse_export(text)

    assert caught.value.line == line
    assert caught.value.column == column
    assert f"line {line}, column {column}" in str(caught.value)
    assert hint in str(caught.value)


def test_rsc_error_position_on_continuation_line():
    """An error on a continuation line names that physical line and its column."""
    with pytest.raises(RscSyntaxError) as caught:
        parse_export('/ip dns\nset servers=1.1.1.1 \\\n    comment="never closed\n')

    assert caught.value.line == 3
    assert caught.value.column == 13
