"""Simulator state, query machine, executor and script runner, without any network."""

from __future__ import annotations

import pytest

from simulator.executor import Result, Session, execute
from simulator.faults import Faults
from simulator.query import QueryError, compile_query, matches
from simulator.script import ScriptSyntaxError, parse_script, unquote
from simulator.scripting import ScriptFailure, parse_duration, run_script_text
from simulator.state import DeviceState, format_id, parse_id, split_version


@pytest.fixture
def state() -> DeviceState:
    return DeviceState.factory("7.19", admin_password="secret")


@pytest.fixture
def admin(state: DeviceState) -> Session:
    user = state.authenticate("admin", "secret")
    assert user is not None
    return Session(state=state, user=user)


def _ok(result: Result) -> Result:
    assert result.traps == [], result.traps
    return result


# -- ids, versions, users --------------------------------------------------------------


def test_state_ids_are_uppercase_hex() -> None:
    """Item ids are ``*`` plus uppercase hex, and parse back to their number."""
    assert format_id(0xFFFFFFFE) == "*FFFFFFFE"
    assert parse_id("*1A") == 26
    assert parse_id("ether1") is None
    assert parse_id("*xyz") is None


def test_state_versions_compare_numerically() -> None:
    """``7.9`` is older than ``7.18``; suffixes such as ``rc2`` are ignored."""
    assert split_version("7.19rc2") == (7, 19)
    assert split_version("7.9") < split_version("7.18")
    assert split_version("6.49.10") == (6, 49, 10)


def test_state_authenticate_checks_password(state: DeviceState) -> None:
    """Only the right password authenticates, and the user gets its group's policies."""
    assert state.authenticate("admin", "wrong") is None
    assert state.authenticate("nobody", "secret") is None
    user = state.authenticate("admin", "secret")
    assert user is not None
    assert {"api", "write", "policy"} <= user.policies


def test_state_clone_copies_on_write(state: DeviceState) -> None:
    """A clone shares tables until one side writes, then only that side changes."""
    twin = state.clone()
    assert twin.tables["/interface/ethernet"] is state.tables["/interface/ethernet"]
    twin.update_item("/interface/ethernet", "*1", {"comment": "twin only"})
    assert twin.tables["/interface/ethernet"] is not state.tables["/interface/ethernet"]
    assert "comment" not in state.tables["/interface/ethernet"].items[0]
    state.update_item("/interface/ethernet", "*2", {"comment": "original only"})
    assert "comment" not in twin.tables["/interface/ethernet"].items[1]


def test_state_reset_from_template(state: DeviceState) -> None:
    """reset_from() brings back the template's configuration in the same object."""
    template = state.clone()
    state.create_item("/ip/pool", {"name": "extra", "ranges": "10.0.0.2-10.0.0.9"})
    state.reset_from(template)
    pools = state.table("/ip/pool")
    assert pools is None or pools.items == []


# -- query stack machine -----------------------------------------------------------------


ITEM = {".id": "*1", "name": "ether1", "type": "ether", "mtu": "1500", "comment": ""}


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["?name"], True),
        (["?-name"], False),
        (["?-slave"], True),
        (["?=type=ether"], True),
        (["?type=vlan"], False),
        (["?<mtu=9000"], True),
        (["?>mtu=9000"], False),
        (["?>comment="], False),
        (["?type=vlan", "?type=ether", "?#|"], True),
        (["?type=vlan", "?type=ether", "?#&"], False),
        (["?=type=ether", "?#!"], False),
        (["?type=vlan", "?#!"], True),
        (["?type=vlan", "?name=ether1", "?#1"], False),
        (["?type=vlan", "?name=ether1", "?#0"], True),
        (["?name=ether1", "?#.!|"], True),
        (["?-slave", "?=disabled=no", "?=type=bridge", "?=type=ether", "?=type=vlan", "?#|", "?#|", "?#&", "?#&"], False),
    ],
)
def test_query_stack_machine(words: list[str], expected: bool) -> None:
    """Query words evaluate like the RouterOS API stack machine."""
    assert matches(ITEM, compile_query(words)) is expected


def test_query_multi_clause_with_disabled() -> None:
    """The documented multi-clause query accepts an enabled ethernet item."""
    item = {**ITEM, "disabled": "false"}
    words = ["?-slave", "?=disabled=no", "?=type=bridge", "?=type=ether", "?=type=vlan", "?#|", "?#|", "?#&", "?#&"]
    assert matches(item, words) is True


def test_query_rejects_unknown_operation() -> None:
    """An unknown ``?#`` operation is an error, not a silent match."""
    with pytest.raises(QueryError, match="unknown query operation"):
        compile_query(["?#x"])


# -- executor ------------------------------------------------------------------------------


def test_executor_add_normalizes_values(admin: Session) -> None:
    """Booleans are stored true/false and an address without prefix gets /32."""
    new_id = _ok(execute(admin, "/ip/address/add", {"address": "192.0.2.1", "interface": "ether1",
                                                     "disabled": "yes"})).done["ret"]
    row = _ok(execute(admin, "/ip/address/print", {}, [f"?.id={new_id}"])).rows[0]
    assert row["address"] == "192.0.2.1/32"
    assert row["disabled"] == "true"
    assert row["network"] == "192.0.2.1"
    assert row["actual-interface"] == "ether1"


def test_executor_rejects_invalid_values(admin: Session) -> None:
    """Malformed addresses, ports and booleans get ``invalid value for argument``."""
    cases = [
        ("/ip/address/add", {"address": "300.1.1.1/24", "interface": "ether1"}, "address"),
        ("/ip/firewall/filter/add", {"chain": "input", "dst-port": "99999"}, "dst-port"),
        ("/ip/firewall/filter/add", {"chain": "input", "disabled": "maybe"}, "disabled"),
    ]
    for command, attrs, name in cases:
        result = execute(admin, command, attrs)
        assert result.traps[0].message == f"invalid value for argument {name}"
        assert result.traps[0].category == 1


def test_executor_rejects_read_only_property(admin: Session) -> None:
    """Computed properties such as ``dynamic`` cannot be written."""
    result = execute(admin, "/ip/route/add", {"dst-address": "0.0.0.0/0", "gateway": "192.0.2.1", "dynamic": "yes"})
    assert result.traps[0].message == "unknown parameter dynamic"


def test_executor_required_property_missing(admin: Session) -> None:
    """add without a required property fails with an argument category trap."""
    result = execute(admin, "/ip/address/add", {"address": "192.0.2.5/24"})
    assert result.traps[0].category == 1
    assert "interface" in result.traps[0].message


def test_executor_print_proplist_matching_nothing(admin: Session) -> None:
    """A .proplist that names nothing present gives one empty row per item."""
    rows = _ok(execute(admin, "/ip/service/print", {".proplist": "comment"})).rows
    assert rows == [{}] * 8


def test_executor_export_returns_nothing(admin: Session) -> None:
    """/export without file= replies with nothing, as RouterOS does over the API."""
    result = _ok(execute(admin, "/export", {}))
    assert result.rows == []
    assert result.done == {}


def test_executor_file_add_existing_fails(admin: Session) -> None:
    """/file/add on an existing name fails with ``failure: file already exists``."""
    _ok(execute(admin, "/file/add", {"name": "notes.txt", "contents": "a"}))
    result = execute(admin, "/file/add", {"name": "notes.txt", "contents": "b"})
    assert result.traps[0].message == "failure: file already exists"


def test_executor_file_read_chunks(admin: Session) -> None:
    """/file/read returns the requested byte range, raw bytes included."""
    contents = "ab\udcffcd"
    _ok(execute(admin, "/file/add", {"name": "raw.bin", "contents": contents}))
    first = _ok(execute(admin, "/file/read", {"file": "raw.bin", "offset": "0", "chunk-size": "3"})).rows
    rest = _ok(execute(admin, "/file/read", {"file": "raw.bin", "offset": "3", "chunk-size": "3"})).rows
    assert first[0]["data"] + rest[0]["data"] == contents


def test_executor_file_read_needs_7_13() -> None:
    """RouterOS 6 has no /file/read command."""
    state = DeviceState.factory("6.49", admin_password="pw")
    user = state.authenticate("admin", "pw")
    assert user is not None
    result = execute(Session(state=state, user=user), "/file/read", {"file": "x"})
    assert result.traps[1].message == "no such command prefix"


def test_executor_import_dry_run_needs_7_16() -> None:
    """dry-run is an unknown parameter before RouterOS 7.16."""
    state = DeviceState.factory("7.15", admin_password="pw")
    user = state.authenticate("admin", "pw")
    assert user is not None
    result = execute(Session(state=state, user=user), "/import", {"file-name": "x.rsc", "dry-run": "", "verbose": "yes"})
    assert result.traps[0].message == "unknown parameter dry-run"


def test_executor_show_sensitive_rejected_on_v6() -> None:
    """show-sensitive does not exist on RouterOS 6."""
    state = DeviceState.factory("6.49", admin_password="pw")
    user = state.authenticate("admin", "pw")
    assert user is not None
    result = execute(Session(state=state, user=user), "/export", {"file": "x", "show-sensitive": ""})
    assert result.traps[0].message == "unknown parameter show-sensitive"


def test_executor_fault_trap_only_nth(admin: Session) -> None:
    """A fault rule with ``nth`` traps only that call."""
    faults = Faults()
    faults.trap_on("/system/identity/set", "failure: injected", nth=2)
    session = Session(state=admin.state, user=admin.user, faults=faults)
    assert execute(session, "/system/identity/set", {"name": "a"}).traps == []
    assert execute(session, "/system/identity/set", {"name": "b"}).traps[0].message == "failure: injected"
    assert execute(session, "/system/identity/set", {"name": "c"}).traps == []


def test_faults_apply_rejects_unknown_key() -> None:
    """Fault JSON with an unknown key fails and names it."""
    with pytest.raises(ValueError, match="unknown fault 'slow'"):
        Faults().apply({"slow": True})
    with pytest.raises(ValueError, match="must be an API path"):
        Faults().trap_on("ip/address/add", "x")


# -- scripts ----------------------------------------------------------------------------


def test_script_parses_menus_and_full_commands() -> None:
    """Menu lines, relative and full commands, selectors and quoting are read."""
    commands = parse_script(
        '/ip address\nadd address=192.0.2.1/24 interface=ether1 comment="two words"\n'
        "/system backup load name=\"rollback\" password=\"\"\n"
        "/interface ethernet set [ find default-name=ether2 ] disabled=yes\n"
        "/routing table add fib name=lab\n"
    )
    assert [(c.path, c.verb) for c in commands] == [
        ("/ip/address", "add"),
        ("/system/backup", "load"),
        ("/interface/ethernet", "set"),
        ("/routing/table", "add"),
    ]
    assert ("comment", "two words") in commands[0].properties
    assert commands[1].properties == [("name", "rollback"), ("password", "")]
    assert commands[2].selector_filter == {"default-name": "ether2"}
    assert ("fib", None) in commands[3].properties


def test_script_unquote_escapes() -> None:
    """Quoted values decode RouterOS escapes, including ``\\HH`` bytes."""
    assert unquote('"a\\"b\\$c\\_d"') == 'a"b$c d'
    assert unquote('"\\D0\\9F"') == "П"
    assert unquote('"\\FF"').encode("utf-8", "surrogateescape") == b"\xff"


def test_script_unterminated_quote_fails() -> None:
    """A quote left open is a syntax error naming the line."""
    with pytest.raises(ScriptSyntaxError, match="line 2"):
        parse_script('/ip address\nadd comment="open\n')


def test_script_run_stops_at_failing_line(admin: Session) -> None:
    """The runner applies lines in order and stops at the first failing one."""
    text = "/ip pool\nadd name=p1 ranges=10.0.0.2-10.0.0.9\nadd name=p1 ranges=10.0.1.2-10.0.1.9\nadd name=p3\n"
    with pytest.raises(ScriptFailure, match="line 3"):
        run_script_text(admin, text)
    pools = admin.state.table("/ip/pool")
    assert pools is not None
    assert [item["name"] for item in pools.items] == ["p1"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("1w2d3h4m5s", 788645.0), ("100ms", 0.1), ("00:01:30", 90.0), ("45", 45.0), ("soon", None)],
)
def test_script_durations(text: str, seconds: float | None) -> None:
    """RouterOS durations parse to seconds; unknown words do not."""
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_script_top_level_commands() -> None:
    """Commands without menu words, such as /import, parse as verb on the root menu."""
    commands = parse_script('/import file-name=candidate.rsc\n/system/backup/load name=x password=""\n')
    assert [(c.path, c.verb) for c in commands] == [("/", "import"), ("/system/backup", "load")]
    assert commands[0].properties == [("file-name", "candidate.rsc")]


def test_script_removes_scheduler_by_find(admin: Session) -> None:
    """A script can remove a scheduler job through [ find name=... ]."""
    execute(admin, "/system/scheduler/add", {"name": "once", "interval": "1h", "on-event": "/log info x"})
    run_script_text(admin, "/system scheduler remove [ find name=once ]")
    jobs = admin.state.table("/system/scheduler")
    assert jobs is not None
    assert jobs.items == []


def test_script_import_runs_file(admin: Session) -> None:
    """A script line /import file-name=... runs the file's commands."""
    _ok(execute(admin, "/file/add", {"name": "pool.rsc", "contents": "/ip pool\nadd name=imported\n"}))
    run_script_text(admin, "/import file-name=pool.rsc")
    pools = admin.state.table("/ip/pool")
    assert pools is not None
    assert [item["name"] for item in pools.items] == ["imported"]


def test_script_log_info_appends(admin: Session) -> None:
    """``/log info "text"`` in a script adds an entry to /log."""
    run_script_text(admin, '/log info "rollback armed"')
    rows = _ok(execute(admin, "/log/print", {".proplist": "topics,message"})).rows
    assert rows == [{"topics": "script,info", "message": "rollback armed"}]


def test_executor_random_commands_never_raise(admin: Session) -> None:
    """Seeded random commands always come back as a Result, never as an exception."""
    import random

    generator = random.Random(7)
    menus = [*admin.state.tables, "/interface", "/system", "/nowhere", ""]
    verbs = ["print", "add", "set", "remove", "unset", "enable", "export", "run", "read", "load", "import"]
    keys = [".id", "name", "address", "interface", "disabled", "!fib", "file", "contents", ".proplist",
            "count-only", "value-name", "interval", "policy", "offset", "bad key", "=x"]
    values = ["", "yes", "*1", "*FFFFFFFE", "ether1", "0", "192.0.2.1/24", "\udcff", "a=b", "!x", "-1"]
    for _ in range(3000):
        command = f"{generator.choice(menus)}/{generator.choice(verbs)}"
        attrs = {generator.choice(keys): generator.choice(values) for _ in range(generator.randint(0, 4))}
        queries = generator.choice([[], ["?name"], ["?#|"], ["?"], ["?#9x"], ["?=a=b", "?#!&"]])
        result = execute(admin, command, attrs, queries)
        assert isinstance(result, Result)
        assert all(trap.message != "failure: internal simulator error" for trap in result.traps), command


def test_loader_places_builtin_selectors() -> None:
    """Export selectors reach built-ins: default-name, positional numbers, *HEX ids, names."""
    from routeros.rsc import parse_export

    text = (
        "# 2026-01-02 03:04:05 by RouterOS 7.19\n"
        "/interface ethernet\nset [ find default-name=ether9 ] comment=extra-port\n"
        "/system logging action\nset 3 remote=192.0.2.10\n"
        "/ppp profile\nset *FFFFFFFE local-address=10.0.0.1\n"
        "/ip service\nset telnet disabled=yes\n"
        "/interface bridge port\nadd bridge=*64 interface=*17\n"
        "/tool weird-menu\nadd anything=goes\n"
    )
    state = DeviceState.from_export(parse_export(text))
    ethernet = state.table("/interface/ethernet")
    assert ethernet is not None
    extra_port = ethernet.find("ether9")
    assert extra_port is not None
    assert extra_port["default-name"] == "ether9"
    assert extra_port["comment"] == "extra-port"
    actions = state.table("/system/logging/action")
    assert actions is not None
    assert actions.items[3]["remote"] == "192.0.2.10"
    profiles = state.table("/ppp/profile")
    assert profiles is not None
    assert profiles.items[0][".id"] == "*FFFFFFFE"
    services = state.table("/ip/service")
    assert services is not None
    assert services.find("telnet")["disabled"] == "true"
    ports = state.table("/interface/bridge/port")
    assert ports is not None
    assert ports.items[0]["bridge"] == "*64"
    assert state.table("/tool/weird-menu").items[0]["anything"] == "goes"


def test_loader_export_properties_become_known() -> None:
    """A property seen in an export is accepted by a strict menu afterwards."""
    from routeros.rsc import parse_export

    state = DeviceState.from_export(parse_export(
        "# 2026-01-02 03:04:05 by RouterOS 7.19\n/ip address\nadd address=192.0.2.1/24 interface=ether1 vrf=main\n"
    ))
    user = state.user_info("admin")
    session = Session(state=state, user=user)
    result = execute(session, "/ip/address/add", {"address": "192.0.2.9/24", "interface": "ether1", "vrf": "main"})
    assert result.traps == []
    unknown = execute(session, "/ip/address/add", {"address": "192.0.2.8/24", "interface": "ether1", "color": "red"})
    assert unknown.traps[0].message == "unknown parameter color"


def test_export_compact_and_verbose(admin: Session) -> None:
    """Compact exports list changes only; verbose ones also list built-in properties."""
    from simulator.export import render_export

    _ok(execute(admin, "/interface/ethernet/set", {".id": "ether2", "comment": "uplink"}))
    compact = render_export(admin.state)
    verbose = render_export(admin.state, verbose=True)
    assert "set [ find default-name=ether2 ] comment=uplink" in compact
    assert "default-name=ether1" not in compact
    assert "set [ find default-name=ether1 ] name=ether1 mtu=1500" in verbose
    assert "set telnet name=telnet port=23 disabled=no" in verbose
    assert "/user\n" not in verbose


def test_export_hides_sensitive_values(admin: Session) -> None:
    """Secrets appear only with show_sensitive."""
    from simulator.export import render_export

    _ok(execute(admin, "/ppp/secret/add", {"name": "dialin", "password": "s3cret"}))
    assert "s3cret" not in render_export(admin.state)
    assert "password=s3cret" in render_export(admin.state, show_sensitive=True)


def test_executor_place_before_and_move(admin: Session) -> None:
    """add place-before inserts in order, and move reorders before a destination or to the end."""
    first = _ok(execute(admin, "/ip/firewall/filter/add", {"chain": "input", "comment": "a"})).done["ret"]
    last = _ok(execute(admin, "/ip/firewall/filter/add", {"chain": "input", "comment": "c"})).done["ret"]
    middle = _ok(execute(admin, "/ip/firewall/filter/add", {"chain": "input", "comment": "b",
                                                              "place-before": last})).done["ret"]

    def order() -> list[str]:
        return [row["comment"] for row in _ok(execute(admin, "/ip/firewall/filter/print", {})).rows]

    assert order() == ["a", "b", "c"]
    _ok(execute(admin, "/ip/firewall/filter/move", {"numbers": last, "destination": first}))
    assert order() == ["c", "a", "b"]
    _ok(execute(admin, "/ip/firewall/filter/move", {"numbers": last}))
    assert order() == ["a", "b", "c"]
    missing = execute(admin, "/ip/firewall/filter/add", {"chain": "input", "place-before": "*FFFF0"})
    assert missing.traps[0].message == "no such item (4)"
    assert middle.startswith("*")


def test_script_splits_statements_on_semicolon() -> None:
    """``;`` separates statements outside quotes and brackets."""
    commands = parse_script(
        '/system scheduler remove [find name="job;1"]; /system backup load name="a;b.backup" password=""'
    )
    assert [(c.path, c.verb) for c in commands] == [("/system/scheduler", "remove"), ("/system/backup", "load")]
    assert commands[0].selector_filter == {"name": "job;1"}
    assert commands[1].properties == [("name", "a;b.backup"), ("password", "")]


def test_executor_address_network_follows_address(admin: Session) -> None:
    """The stored network follows the address on add and on set."""
    new_id = _ok(execute(admin, "/ip/address/add", {"address": "198.51.100.7/24", "interface": "ether1"})).done["ret"]
    _ok(execute(admin, "/ip/address/set", {".id": new_id, "address": "203.0.113.9/25"}))
    row = _ok(execute(admin, "/ip/address/print", {".proplist": "address,network"}, [f"?.id={new_id}"])).rows[0]
    assert row == {"address": "203.0.113.9/25", "network": "203.0.113.0"}


def test_api_split_word_keeps_equals_in_value() -> None:
    """Attribute words split at the first two '=' only; a lone name gets an empty value."""
    from simulator.api_server import split_word

    assert split_word("=comment=a=b=c") == ("comment", "a=b=c")
    assert split_word("=comment=") == ("comment", "")
    assert split_word("=fib") == ("fib", "")


def test_script_runs_stored_script_by_name(admin: Session) -> None:
    """An event line ``/system script run NAME`` runs that stored script."""
    _ok(execute(admin, "/system/script/add", {"name": "make-pool", "source": "/ip pool add name=by-event"}))
    run_script_text(admin, "/system script run make-pool")
    pools = admin.state.table("/ip/pool")
    assert pools is not None
    assert [item["name"] for item in pools.items] == ["by-event"]
