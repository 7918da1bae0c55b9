"""Argument parsing and the bootstrap script of ``tikflow devices``."""

from __future__ import annotations

import json
import re

import pytest
import typer

from tikflow.commands.devices import parse_address, parse_flags, render_bootstrap_script


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", None)),
        ("192.0.2.1:8729", ("192.0.2.1", 8729)),
        ("router.example.net:22", ("router.example.net", 22)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("[2001:db8::1]:8728", ("2001:db8::1", 8728)),
        ("[::1]", ("::1", None)),
    ],
)
def test_parse_address_splits_host_and_port(text: str, expected: tuple[str, int | None]) -> None:
    """HOST, HOST:PORT and bracketed IPv6 with a port all split correctly."""
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["192.0.2.1:0", "192.0.2.1:70000", "192.0.2.1:ssh", ":8728"])
def test_parse_address_rejects_bad_port_with_exit_2(text: str) -> None:
    """A missing host or a port outside 1-65535 exits with the bad-input code."""
    with pytest.raises(typer.Exit) as raised:
        parse_address(text)

    assert raised.value.exit_code == 2


def test_parse_flags_types_booleans() -> None:
    """true/false become booleans; other values stay strings."""
    assert parse_flags(["bgp=true", "ipv6=False", "tier=gold"]) == {"bgp": True, "ipv6": False,
                                                                    "tier": "gold"}


def test_parse_flags_rejects_missing_equals() -> None:
    """A flag without KEY=VALUE exits with the bad-input code."""
    with pytest.raises(typer.Exit) as raised:
        parse_flags(["bgp"])

    assert raised.value.exit_code == 2


def test_bootstrap_script_escapes_enrol_body() -> None:
    """The fetch body survives RouterOS quoting: unescaped, it is the JSON the api expects."""
    script = render_bootstrap_script(name="r1", transport="rest", username="svc", token="tok$en\"x",
                                     expires_at="2026-12-04T22:00:00+00:00",
                                     url="http://127.0.0.1:8080")

    escaped = re.search(r'http-data="((?:[^"\\]|\\.)*)"', script).group(1)
    body = json.loads(re.sub(r"\\(.)", r"\1", escaped))
    assert body["token"] == "tok$en\"x"
    assert body["username"] == "svc"
    assert "\\$" in escaped
    assert f'password="{body["password"]}"' in script
    assert "policy=read,write,policy,test,rest-api " in script


def test_bootstrap_script_password_differs_per_call() -> None:
    """Every script gets a fresh password."""
    arguments = {"name": "r1", "transport": "api", "username": "svc", "token": "t",
                 "expires_at": "x", "url": "http://127.0.0.1:8080"}

    first, second = render_bootstrap_script(**arguments), render_bootstrap_script(**arguments)

    assert first != second
