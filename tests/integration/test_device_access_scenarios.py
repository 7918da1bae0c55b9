"""The device access layer against the simulator, one scenario set over every transport.

Each test runs over ``api``, ``api-ssl`` (pinned fingerprint), ``rest`` (HTTP), ``rest-ssl``
(pinned fingerprint) and ``ssh`` against a simulated RouterOS 7.19 device served from this
process on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from routeros.client import DeviceClient, open_client
from routeros.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidValue,
    ItemNotFound,
    PermissionDenied,
    UnknownParameter,
    UnknownPath,
)
from routeros.target import DeviceTarget
from routeros.values import decode_row, encode_values, parse_bool
from simulator.fleet import Device, Fleet

VARIANTS = ["api", "api-ssl", "rest", "rest-ssl", "ssh"]


@pytest_asyncio.fixture(scope="module")
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet(1, version="7.19") as running:
        yield running


@pytest.fixture
def device(fleet: Fleet) -> Device:
    """The fleet's device, back at its starting configuration with every fault off."""
    simulated = fleet.device("r1")
    simulated.state.reset_from(simulated.template)
    simulated.faults.clear()
    return simulated


def make_target(fleet: Fleet, device: Device, variant: str, **overrides: object) -> DeviceTarget:
    """Build the target for one transport variant of the simulated device."""
    values: dict[str, object] = {
        "host": fleet.host,
        "port": device.ports[variant],
        "transport": "rest" if variant.startswith("rest") else variant,
        "username": fleet.credentials()["username"],
        "password": fleet.credentials()["password"],
        "connect_timeout": 5,
        "command_timeout": 5,
    }
    if variant in ("api-ssl", "rest-ssl"):
        values["tls_fingerprint"] = fleet.fingerprint
    if variant == "rest":
        values["rest_tls"] = False
    values.update(overrides)
    return DeviceTarget(**values)  # type: ignore[arg-type]


@pytest_asyncio.fixture(params=VARIANTS)
async def client(
    request: pytest.FixtureRequest, fleet: Fleet, device: Device
) -> AsyncIterator[DeviceClient]:
    opened = await open_client(make_target(fleet, device, request.param))
    yield opened
    await opened.close()


async def test_device_access_print_filters_and_proplist(client: DeviceClient) -> None:
    """print filters on the device, limits properties and returns .id only when listed."""
    rows = await client.print("/interface/ethernet", where={"name": "ether2"})
    assert len(rows) == 1
    assert rows[0]["name"] == "ether2"
    assert rows[0][".id"].startswith("*")

    narrow = await client.print("/interface/ethernet", proplist=["name", "mtu"])
    assert [row["name"] for row in narrow] == [f"ether{index}" for index in range(1, 6)]
    assert all(set(row) == {"name", "mtu"} for row in narrow)

    limited = await client.print("/interface/ethernet", proplist=[".id", "name"], limit=2)
    assert len(limited) == 2
    assert set(limited[0]) == {".id", "name"}


async def test_device_access_add_set_remove(client: DeviceClient) -> None:
    """An item added, changed and removed shows each change in print."""
    new_id = await client.add(
        "/ip/address", {"address": "10.9.0.1/24", "interface": "ether2", "comment": ""}
    )
    assert new_id.startswith("*")
    rows = await client.print("/ip/address", where={".id": new_id})
    assert rows[0]["address"] == "10.9.0.1/24"
    assert rows[0]["comment"] == ""

    await client.set("/ip/address", new_id, {"comment": 'uplink "A" $1'})
    rows = await client.print("/ip/address", where={".id": new_id}, proplist=["comment"])
    assert rows == [{"comment": 'uplink "A" $1'}]

    await client.remove("/ip/address", [new_id])
    assert await client.print("/ip/address", where={".id": new_id}) == []


async def test_device_access_singleton_get_set_keeps_0000(client: DeviceClient) -> None:
    """A singleton set to the name 0000 reads back as the string 0000."""
    await client.set("/system/identity", None, {"name": "0000"})
    identity = await client.get("/system/identity")
    assert identity["name"] == "0000"
    resource = await client.get("/system/resource")
    assert resource["version"].startswith("7.19")
    assert decode_row("/system/resource", resource)["cpu-count"] == 2


async def test_device_access_export_terse(client: DeviceClient) -> None:
    """export returns the terse configuration including a change just made."""
    await client.set("/system/identity", None, {"name": "edge-7"})
    text = await client.export(terse=True)
    assert text.startswith("# ")
    assert "/system identity set name=edge-7" in text
    files = await client.print("/file", proplist=["name"])
    assert not [row for row in files if row.get("name", "").startswith("tikflow-export")]


async def test_device_access_typed_errors(client: DeviceClient) -> None:
    """Device answers map to typed, non-retryable errors."""
    with pytest.raises(UnknownPath) as unknown_path:
        await client.print("/ip/no-such-menu")
    assert unknown_path.value.retryable is False

    with pytest.raises(InvalidValue):
        await client.add("/ip/address", {"address": "not-an-address", "interface": "ether1"})

    await client.add("/ip/address", {"address": "10.9.1.1/24", "interface": "ether1"})
    with pytest.raises(AlreadyExists):
        await client.add("/ip/address", {"address": "10.9.1.1/24", "interface": "ether1"})

    with pytest.raises(ItemNotFound):
        await client.set("/ip/address", "*FFFF", {"comment": "x"})

    with pytest.raises(UnknownParameter):
        await client.add("/ip/address", {"address": "10.9.2.1/24", "bogus-property": "1"})


@pytest.mark.parametrize("variant", VARIANTS)
async def test_device_access_bad_password(fleet: Fleet, device: Device, variant: str) -> None:
    """A wrong password fails at connect with AuthenticationFailed and no password in it."""
    target = make_target(fleet, device, variant, password="wrong-password-123")
    with pytest.raises(AuthenticationFailed) as failure:
        await open_client(target)
    assert failure.value.retryable is False
    assert "wrong-password-123" not in str(failure.value)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_device_access_read_only_user_cannot_write(
    fleet: Fleet, device: Device, variant: str
) -> None:
    """A user whose group lacks the write policy gets PermissionDenied on add."""
    device.state.add_user("auditor", "read", "auditor-pw")
    target = make_target(fleet, device, variant, username="auditor", password="auditor-pw")
    client = await open_client(target)
    try:
        assert await client.print("/interface/ethernet", proplist=["name"], limit=1)
        with pytest.raises(PermissionDenied, match="not enough permissions"):
            await client.add("/ip/address", {"address": "10.9.3.1/24", "interface": "ether1"})
    finally:
        await client.close()


@pytest.mark.parametrize("variant", ["api", "api-ssl", "rest", "rest-ssl"])
async def test_device_access_user_without_service_policy(
    fleet: Fleet, device: Device, variant: str
) -> None:
    """A group without the api or rest-api policy cannot log in over that service."""
    device.state.create_item("/user/group", {"name": "webfig-only", "policy": "read,write,web"})
    device.state.add_user("webonly", "webfig-only", "webonly-pw")
    target = make_target(fleet, device, variant, username="webonly", password="webonly-pw")
    with pytest.raises(AuthenticationFailed):
        await open_client(target)


@pytest.mark.parametrize("variant", VARIANTS)
async def test_device_access_non_utf8_comment(fleet: Fleet, device: Device, variant: str) -> None:
    """A CP1251 comment reads as \\xHH text in UTF-8 mode and as Cyrillic with cp1251."""
    cp1251 = "Привет".encode("cp1251")
    item = device.state.table("/interface/ethernet").find("ether3")
    item["comment"] = cp1251.decode("utf-8", "surrogateescape")

    utf8_client = await open_client(make_target(fleet, device, variant))
    try:
        rows = await utf8_client.print("/interface/ethernet", where={"name": "ether3"})
    finally:
        await utf8_client.close()
    assert rows[0]["comment"] == "\\xcf\\xf0\\xe8\\xe2\\xe5\\xf2"

    cp_client = await open_client(make_target(fleet, device, variant, encoding="cp1251"))
    try:
        rows = await cp_client.print("/interface/ethernet", where={"name": "ether3"})
        assert rows[0]["comment"] == "Привет"
        await cp_client.set("/interface/ethernet", rows[0][".id"], {"comment": "Пока"})
    finally:
        await cp_client.close()
    stored = device.state.table("/interface/ethernet").find("ether3")["comment"]
    assert stored.encode("utf-8", "surrogateescape") == "Пока".encode("cp1251")


@pytest.mark.parametrize("variant", ["api", "api-ssl", "rest", "rest-ssl"])
async def test_device_access_flag_property(fleet: Fleet, device: Device, variant: str) -> None:
    """A flag is present as an empty value when set and absent once unset."""
    client = await open_client(make_target(fleet, device, variant))
    try:
        new_id = await client.add(
            "/routing/table", {"name": "vrf-blue", **encode_values("/routing/table", {"fib": True})}
        )
        row = (await client.print("/routing/table", where={".id": new_id}))[0]
        assert row["fib"] == ""
        assert decode_row("/routing/table", row)["fib"] is True

        await client.set("/routing/table", new_id, encode_values("/routing/table", {"fib": False}))
        row = (await client.print("/routing/table", where={".id": new_id}))[0]
        assert "fib" not in row
        assert decode_row("/routing/table", row)["fib"] is False
    finally:
        await client.close()


async def test_device_access_yes_no_only_property(client: DeviceClient) -> None:
    """A yes/no-only property rejects 'true' and accepts the encoded 'yes'."""
    ether = (await client.print("/interface/ethernet", where={"name": "ether4"}))[0]
    with pytest.raises(InvalidValue, match="yes or no"):
        await client.set("/interface/ethernet", ether[".id"], {"power-cycle-ping-enabled": "true"})

    values = encode_values("/interface/ethernet", {"power-cycle-ping-enabled": "true"})
    await client.set("/interface/ethernet", ether[".id"], values)
    row = (await client.print("/interface/ethernet", where={"name": "ether4"}))[0]
    assert parse_bool(row["power-cycle-ping-enabled"]) is True


@pytest.mark.parametrize("variant", VARIANTS)
async def test_device_access_large_export_reads_in_chunks(
    fleet: Fleet, device: Device, variant: str
) -> None:
    """An export too large for inline file contents is read back completely in chunks."""
    for index in range(1500):
        device.state.create_item(
            "/ip/firewall/address-list",
            {
                "list": "bulk",
                "address": f"10.{index // 250}.{index % 250}.1",
                "comment": f"entry-{index}",
            },
        )
    client = await open_client(make_target(fleet, device, variant))
    try:
        text = await client.export(terse=True)
    finally:
        await client.close()
    assert len(text) > 70_000
    assert "comment=entry-0 " in text or "comment=entry-0\n" in text
    assert "entry-1499" in text
    assert text.count("list=bulk") == 1500


@pytest.mark.parametrize("variant", VARIANTS)
async def test_device_access_limit_keeps_connection_in_step(
    fleet: Fleet, device: Device, variant: str
) -> None:
    """A limited print on a large table returns the first rows and the next command works."""
    for index in range(800):
        device.state.create_item(
            "/ip/firewall/address-list",
            {"list": "bulk", "address": f"10.{index // 250}.{index % 250}.2"},
        )
    client = await open_client(make_target(fleet, device, variant))
    try:
        first = await client.print("/ip/firewall/address-list", proplist=["address"], limit=3)
        identity = await client.get("/system/identity")
        everything = await client.print("/ip/firewall/address-list", proplist=["address"])
        nothing = await client.print("/ip/firewall/address-list", limit=0)
    finally:
        await client.close()
    assert first == [{"address": "10.0.0.2"}, {"address": "10.0.1.2"}, {"address": "10.0.2.2"}]
    assert identity["name"] == "MikroTik"
    assert len(everything) == 800
    assert nothing == []


async def test_device_access_command_unset_and_add(client: DeviceClient) -> None:
    """command() runs unset by .id, a singleton set, and an add that reports its id."""
    new_id = await client.add(
        "/ip/address", {"address": "10.9.5.1/24", "interface": "ether1", "comment": "temporary"}
    )
    await client.command("/ip/address/unset", {".id": new_id, "value-name": "comment"})
    row = (await client.print("/ip/address", where={".id": new_id}))[0]
    assert "comment" not in row

    await client.command("/system/identity/set", {"name": "via-command"})
    assert (await client.get("/system/identity"))["name"] == "via-command"

    reply = await client.command(
        "/ip/address/add", {"address": "10.9.6.1/24", "interface": "ether1"}
    )
    assert reply[-1]["ret"].startswith("*")

    await client.remove("/ip/address", [new_id, reply[-1]["ret"]])
    assert await client.print("/ip/address", where={"interface": "ether1"}) == []
