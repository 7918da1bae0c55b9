"""The device access layer against the simulator's fault modes and TLS/host key checks.

Faults the simulator offers only on some transports are tested on those: dropping after N
sentences exists on the binary API only, and invalid JSON is a REST fault. Latency, hang,
refused logins and injected traps apply to every transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from routeros.client import open_client
from routeros.errors import (
    AlreadyExists,
    AuthenticationFailed,
    ConnectionLost,
    DeviceTimeout,
    HostKeyVerificationFailed,
    TlsVerificationFailed,
)
from routeros.pool import DevicePool
from routeros.target import DeviceTarget
from simulator.fleet import Device, Fleet
from simulator.ssh import host_key

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
    """Build the target for one transport variant, pinning the fleet's certificate."""
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


@pytest.mark.parametrize("variant", VARIANTS)
async def test_fault_latency_within_timeout(fleet: Fleet, device: Device, variant: str) -> None:
    """Replies slower than usual but inside the command timeout still arrive."""
    client = await open_client(make_target(fleet, device, variant))
    try:
        device.faults.set_latency(0.2)
        rows = await client.print("/interface/ethernet", proplist=["name"])
        assert len(rows) == 5
    finally:
        await client.close()


@pytest.mark.parametrize("variant", VARIANTS)
async def test_fault_latency_beyond_timeout(fleet: Fleet, device: Device, variant: str) -> None:
    """A reply slower than the command timeout raises a retryable DeviceTimeout."""
    target = make_target(fleet, device, variant, command_timeout=0.2)
    client = await open_client(target)
    try:
        device.faults.set_latency(2)
        with pytest.raises(DeviceTimeout) as timeout:
            await asyncio.wait_for(client.print("/interface/ethernet"), timeout=5)
        assert timeout.value.retryable is True
        if not variant.startswith("rest"):
            assert client.healthy is False
    finally:
        await client.close()


@pytest.mark.parametrize("variant", ["api", "api-ssl"])
async def test_fault_drop_after_sentences(fleet: Fleet, device: Device, variant: str) -> None:
    """A connection cut in the middle of a reply raises ConnectionLost and is not reused."""
    client = await open_client(make_target(fleet, device, variant))
    try:
        # The login reply counts as one sentence; the print gets two rows, then the cut.
        device.faults.drop_after(3)
        with pytest.raises(ConnectionLost) as lost:
            await asyncio.wait_for(client.print("/interface/ethernet"), timeout=5)
        assert lost.value.retryable is True
        assert client.healthy is False
        with pytest.raises(ConnectionLost, match="failed or was closed"):
            await client.get("/system/identity")
    finally:
        await client.close()


@pytest.mark.parametrize("variant", VARIANTS)
async def test_fault_hang_costs_one_slot(fleet: Fleet, device: Device, variant: str) -> None:
    """A hung device times out, its slot is released and the pool recovers afterwards."""
    target = make_target(fleet, device, variant, connect_timeout=0.3, command_timeout=0.3)
    pool = DevicePool(max_per_device=1)
    try:
        async with pool.session("r1", target) as client:
            await client.get("/system/identity")
        device.faults.hang = True
        with pytest.raises(DeviceTimeout):
            async with asyncio.timeout(5):
                async with pool.session("r1", target) as client:
                    await client.get("/system/identity")
        assert pool.free_slots("r1") == 1
        assert pool.idle_count("r1") == 0

        device.faults.hang = False
        async with asyncio.timeout(5):
            async with pool.session("r1", target) as client:
                assert (await client.get("/system/identity"))["name"] == "MikroTik"
    finally:
        await pool.close()


@pytest.mark.parametrize("variant", VARIANTS)
async def test_fault_refused_login(fleet: Fleet, device: Device, variant: str) -> None:
    """A device that refuses every login gives AuthenticationFailed, not a retry."""
    device.faults.refuse_logins = True
    with pytest.raises(AuthenticationFailed) as failure:
        await open_client(make_target(fleet, device, variant))
    assert failure.value.retryable is False


@pytest.mark.parametrize("variant", VARIANTS)
async def test_fault_trap_on_command(fleet: Fleet, device: Device, variant: str) -> None:
    """An injected trap on add surfaces as the typed error for its message."""
    device.faults.trap_on("/ip/address/add", "failure: already have such address")
    client = await open_client(make_target(fleet, device, variant))
    try:
        with pytest.raises(AlreadyExists, match="already have such address"):
            await client.add("/ip/address", {"address": "10.7.0.1/24", "interface": "ether1"})
        assert client.healthy is True
        assert await client.print("/ip/address", where={"address": "10.7.0.1/24"}) == []
    finally:
        await client.close()


# rest-ssl is left out because the simulator's HTTPS server takes 30 s to stop while a
# client holds an idle keep-alive connection (it waits for the TLS shutdown to time out).
@pytest.mark.parametrize("variant", ["api", "api-ssl", "rest", "ssh"])
async def test_fault_restart_recovers_through_pool(
    fleet: Fleet, device: Device, variant: str
) -> None:
    """After a device restart the pool drops or reconnects the idle connection by itself."""
    target = make_target(fleet, device, variant)
    pool = DevicePool()
    try:
        async with pool.session("r1", target) as client:
            await client.set("/system/identity", None, {"name": "before-restart"})
        idle_client = client
        await fleet.restart("r1")
        async with asyncio.timeout(5):
            async with pool.session("r1", target) as client:
                assert (await client.get("/system/identity"))["name"] == "before-restart"
        if variant.startswith("rest"):
            # httpx reconnects by itself, so the REST client stays in use.
            assert client is idle_client
        else:
            assert client is not idle_client
            assert idle_client.healthy is False
    finally:
        await pool.close()


@pytest.mark.parametrize("variant", ["rest", "rest-ssl"])
async def test_fault_rest_invalid_json(fleet: Fleet, device: Device, variant: str) -> None:
    """Raw control bytes in REST JSON are repaired and reach the row unchanged."""
    device.state.table("/interface/ethernet").find("ether5")["comment"] = "esc\x1b[0mapes"
    device.faults.rest_invalid_json = True
    client = await open_client(make_target(fleet, device, variant))
    try:
        rows = await client.print("/interface/ethernet", where={"name": "ether5"})
    finally:
        await client.close()
    assert rows[0]["comment"] == "esc\x1b[0mapes"


@pytest.mark.parametrize("variant", ["api-ssl", "rest-ssl"])
async def test_tls_wrong_fingerprint_rejected(fleet: Fleet, device: Device, variant: str) -> None:
    """A pinned fingerprint that does not match stops the connection before login."""
    target = make_target(fleet, device, variant, tls_fingerprint="00" * 32)
    with pytest.raises(TlsVerificationFailed, match="fingerprint mismatch"):
        await open_client(target)


@pytest.mark.parametrize("variant", ["api-ssl", "rest-ssl"])
async def test_tls_self_signed_needs_trust(fleet: Fleet, device: Device, variant: str) -> None:
    """Without a pin or CA a self-signed certificate fails; tls_verify=False accepts it."""
    strict = make_target(fleet, device, variant, tls_fingerprint=None)
    with pytest.raises(TlsVerificationFailed):
        await open_client(strict)
    loose = make_target(fleet, device, variant, tls_fingerprint=None, tls_verify=False)
    client = await open_client(loose)
    await client.close()


async def test_tls_ca_file_verifies_api_ssl(fleet: Fleet, device: Device, tmp_path: Path) -> None:
    """The fleet certificate given as CA file verifies api-ssl for its host name."""
    assert fleet.tls is not None
    ca_file = tmp_path / "fleet-ca.pem"
    ca_file.write_bytes(fleet.tls.cert_pem)
    target = make_target(
        fleet, device, "api-ssl", host="localhost", tls_fingerprint=None, tls_ca_file=str(ca_file)
    )
    client = await open_client(target)
    try:
        assert (await client.get("/system/identity"))["name"] == "MikroTik"
    finally:
        await client.close()


async def test_ssh_host_key_pinning(fleet: Fleet, device: Device) -> None:
    """The pinned SSH host key fingerprint is accepted and any other is rejected."""
    algorithm = device.servers["ssh"].host_key_algorithm
    fingerprint = host_key(algorithm).get_fingerprint("sha256")
    client = await open_client(make_target(fleet, device, "ssh", ssh_host_key=fingerprint))
    await client.close()
    wrong = "SHA256:" + "A" * 43
    with pytest.raises(HostKeyVerificationFailed):
        await open_client(make_target(fleet, device, "ssh", ssh_host_key=wrong))


async def test_ssh_host_key_pinning_by_public_key(fleet: Fleet, device: Device) -> None:
    """An OpenSSH public key line works as the pin too."""
    algorithm = device.servers["ssh"].host_key_algorithm
    public_line = host_key(algorithm).export_public_key().decode()
    client = await open_client(make_target(fleet, device, "ssh", ssh_host_key=public_line))
    await client.close()


async def test_ssh_print_without_show_ids(fleet: Fleet, device: Device) -> None:
    """When the console rejects show-ids, print takes the ids from find instead."""
    rule = device.faults.trap_on(
        "/interface/ethernet/print", "expected end of command (line 1 column 36)", nth=1
    )
    client = await open_client(make_target(fleet, device, "ssh"))
    try:
        rows = await client.print("/interface/ethernet", proplist=[".id", "name"])
    finally:
        await client.close()
    assert [row["name"] for row in rows] == [f"ether{index}" for index in range(1, 6)]
    assert [row[".id"] for row in rows] == ["*1", "*2", "*3", "*4", "*5"]
    assert rule.calls >= 2  # the rejected print, then the fallback
