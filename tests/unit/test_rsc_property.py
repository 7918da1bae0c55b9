"""Property-based checks that rendering and parsing lose nothing."""

from __future__ import annotations

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from routeros.rsc import RscCommand, RscSyntaxError, parse_export, render_export

PATHS = ["/ip/firewall/filter", "/system/script", "/interface/wireless/cap"]
SELECTORS = [None, "0", "*FFFFFFFE", "telnet", "[ find default=yes ]", '[ find name="a b" ]']
FLAGS = ["fib", "passive", "!keepalive", "!bridge"]
# Characters that exercise quoting and escaping, mixed into otherwise random text.
AWKWARD = " \"\\=?$[](){}';`!*#<>\t\r\n"

keys = st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z][a-z0-9-]{0,8})?", fullmatch=True)
raw_values = st.binary(max_size=300).map(lambda data: data.decode("utf-8", "surrogateescape"))
awkward_values = st.text(alphabet=st.sampled_from(AWKWARD + "ab1-,./:"), max_size=200)
long_values = st.text(alphabet="abc,-0123456789", min_size=70, max_size=400)
# Long values dense with spaces and escapes, so that wraps land on them.
spaced_values = st.text(alphabet='ab "\\', min_size=60, max_size=300)
values = st.one_of(raw_values, awkward_values, long_values, spaced_values, st.just(""))
properties = st.lists(
    st.one_of(st.tuples(keys, values), st.tuples(st.sampled_from(FLAGS), st.none())),
    max_size=12,
)


@st.composite
def commands(draw: st.DrawFn) -> RscCommand:
    """Draw a command that RouterOS syntax can express without ambiguity."""
    verb = draw(st.sampled_from(["add", "set", "remove"]))
    selector = None if verb == "add" else draw(st.sampled_from(SELECTORS))
    props = draw(properties)
    if verb != "add" and selector is None and props and props[0][1] is None:
        assume(props[0][0].startswith("!"))
    return RscCommand(draw(st.sampled_from(PATHS)), verb, selector, properties=props)


def comparable(command: RscCommand) -> tuple:
    """Return what a round trip must keep."""
    return command.path, command.verb, command.selector, command.properties


@settings(max_examples=300, deadline=None)
@given(st.lists(commands(), min_size=1, max_size=4), st.sampled_from(["compact", "terse"]))
def test_rsc_render_parse_is_lossless(generated: list[RscCommand], style: str):
    """Rendering random commands and parsing the text back gives the same commands."""
    sections = [(command.path, [command]) for command in generated]

    text = render_export(sections, style=style, version="7.19")
    parsed = parse_export(text.encode("utf-8", "surrogateescape"))

    assert [comparable(command) for command in parsed.commands] == [
        comparable(command) for command in generated
    ]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=3))
def test_rsc_find_filter_round_trip(selector_filter: dict[str, str]):
    """A '[ find ... ]' selector built from a filter parses back to the same filter."""
    command = RscCommand(
        "/interface", "set", selector_filter=selector_filter, properties=[("mtu", "1500")]
    )

    text = render_export([("/interface", [command])], version="7.19")

    assert parse_export(text).commands[0].selector_filter == selector_filter


@settings(max_examples=200, deadline=None)
@given(values)
def test_rsc_value_bytes_survive(value: str):
    """Any byte string comes back byte for byte through the renderer and the parser."""
    command = RscCommand("/system/script", "add", properties=[("source", value)])

    text = render_export([("/system/script", [command])], version="6.49")
    parsed_value = parse_export(text).commands[0].get("source") or ""

    assert parsed_value.encode("utf-8", "surrogateescape") == value.encode(
        "utf-8", "surrogateescape"
    )


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.text(alphabet='/ ipadset=[]"\\\n\r\t#!.*_0F', max_size=300).map(str.encode),
    )
)
def test_rsc_parser_rejects_garbage_cleanly(data: bytes):
    """Arbitrary bytes either parse or raise RscSyntaxError, never another exception."""
    try:
        parsed = parse_export(data)
    except RscSyntaxError as error:
        assert error.line >= 1
        assert error.column >= 1
    else:
        assert all(command.path.startswith("/") for command in parsed.commands)
