"""Version differences the device access layer hides: RouterOS 6 against 7.

RouterOS 6 prints secrets in exports unless told ``hide-sensitive`` and rejects
``show-sensitive``; RouterOS 7 is the other way round. RouterOS 6 has no REST API and offers
only ``ssh-rsa`` host keys.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import pytest_asyncio

from routeros.client import open_client
from routeros.errors import AuthenticationFailed, UnknownParameter
from routeros.target import DeviceTarget
from simulator.fleet import Fleet


@pytest_asyncio.fixture(scope="module", params=["6.49.10", "7.19"])
async def fleet(request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    async with Fleet(1, version=request.param, transports=("api", "ssh")) as running:
        yield running


def make_target(fleet: Fleet, transport: str) -> DeviceTarget:
    device = fleet.device("r1")
    return DeviceTarget(
        host=fleet.host,
        port=device.ports[transport],
        transport=transport,  # type: ignore[arg-type]
        username=fleet.credentials()["username"],
        password=fleet.credentials()["password"],
        connect_timeout=5,
        command_timeout=5,
    )


@pytest.mark.parametrize("transport", ["api", "ssh"])
async def test_export_sensitive_words_per_version(fleet: Fleet, transport: str) -> None:
    """show_sensitive decides whether a PPP secret appears, on either major version."""
    device = fleet.device("r1")
    device.state.reset_from(device.template)
    client = await open_client(make_target(fleet, transport))
    try:
        await client.add("/ppp/secret", {"name": "vpn-user", "password": "ppp-topsecret"})
        hidden = await client.export(show_sensitive=False)
        shown = await client.export(show_sensitive=True)
    finally:
        await client.close()
    assert "name=vpn-user" in hidden
    assert "ppp-topsecret" not in hidden
    assert "ppp-topsecret" in shown


async def test_v6_rejects_show_sensitive_word(fleet: Fleet) -> None:
    """RouterOS 6 rejects show-sensitive, which is why export picks the word by version."""
    client = await open_client(make_target(fleet, "api"))
    try:
        if fleet.device("r1").version.startswith("6."):
            with pytest.raises(UnknownParameter):
                await client.command("/export", {"show-sensitive": "", "file": "probe"})
        else:
            await client.command("/export", {"show-sensitive": "", "file": "probe"})
            assert await client.print("/file", where={"name": "probe.rsc"}, proplist=["name"])
    finally:
        await client.close()


async def test_ssh_connects_with_version_host_key(fleet: Fleet) -> None:
    """SSH logs in whether the device offers ssh-rsa (RouterOS 6) or ed25519 (RouterOS 7)."""
    client = await open_client(make_target(fleet, "ssh"))
    try:
        version = (await client.get("/system/resource"))["version"]
    finally:
        await client.close()
    assert version.startswith(fleet.device("r1").version)


async def test_api_login_before_6_43() -> None:
    """A RouterOS 6.40 device answers the login with an MD5 challenge that the client meets.

    A wrong password there fails the challenge and is AuthenticationFailed.
    """
    async with Fleet(1, version="6.40.9", transports=("api",)) as old_fleet:
        target = make_target(old_fleet, "api")
        client = await open_client(target)
        try:
            version = (await client.get("/system/resource"))["version"]
        finally:
            await client.close()
        assert version.startswith("6.40.9")
        with pytest.raises(AuthenticationFailed):
            await open_client(replace(target, password="wrong-password"))
