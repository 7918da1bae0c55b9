"""librouteros ``Config`` helpers (export, compare, import, backup, rollback) on the simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator

import librouteros
import pytest
from librouteros.exceptions import ConnectionClosed, TrapError
from librouteros.query import Key

from simulator.background import BackgroundFleet
from simulator.fleet import Fleet

HOST = "127.0.0.1"
WAIT = 5.0
ROLLBACK_WAIT = 10.0


@pytest.fixture(scope="module")
def sim() -> Iterator[BackgroundFleet]:
    with BackgroundFleet(Fleet(1, version="7.19", transports=("api",))) as background:
        yield background


def _connect(sim: BackgroundFleet) -> librouteros.api.Api:
    return librouteros.connect(HOST, "admin", sim.fleet.admin_password, port=sim.port("r1"), timeout=WAIT)


@pytest.fixture
def api(sim: BackgroundFleet) -> Iterator[librouteros.api.Api]:
    sim.run(sim.fleet.restart("r1", keep_state=False))
    connection = _connect(sim)
    yield connection
    connection.close()


def _addresses(api: librouteros.api.Api) -> list[str]:
    return [str(row["address"]) for row in api.path("ip", "address").select(Key("address"))]


def test_config_export_reads_file_back(api: librouteros.api.Api) -> None:
    """export() writes a file, reads it through /file and removes it afterwards."""
    api.path("ip", "address").add(address="10.1.0.1/24", interface="ether1", comment="exported")
    text = api.config().export()
    assert text.startswith("# ")
    assert "by RouterOS 7.19" in text.splitlines()[0]
    assert 'add address=10.1.0.1/24 comment=exported interface=ether1' in text or "comment=exported" in text
    assert not list(api.path("file").select(Key("name")).where(Key("name") == "librouteros-export.rsc"))


def test_config_export_large_uses_file_read(api: librouteros.api.Api) -> None:
    """An export over the inline contents limit is read back in /file/read chunks."""
    lists = api.path("ip", "firewall", "address-list")
    for index in range(300):
        lists.add(list="bulk", address=f"198.51.{100 + index // 200}.{index % 200}", comment=f"bulk entry {index}")
    text = api.config().export()
    assert len(text) > 4096
    assert text.count("list=bulk") == 300


def test_config_export_of_one_menu(api: librouteros.api.Api) -> None:
    """export(path=...) runs the menu's own export and contains only that menu."""
    api.path("ip", "address").add(address="10.2.0.1/24", interface="ether2")
    text = api.config().export(path="ip/address")
    assert "/ip address" in text
    assert "/ip service" not in text


def test_config_compare_shows_candidate_diff(api: librouteros.api.Api) -> None:
    """compare() diffs the running export against a candidate text."""
    config = api.config()
    running = config.export()
    assert config.compare(running) == ""
    diff = config.compare(running + "/ip address\nadd address=10.3.0.1/24 interface=ether3\n")
    assert "+add address=10.3.0.1/24 interface=ether3" in diff


def test_config_apply_and_validate(api: librouteros.api.Api) -> None:
    """apply() uploads and imports a script; validate() dry-runs without changing anything."""
    config = api.config()
    config.validate("/ip address\nadd address=10.4.0.1/24 interface=ether1\n")
    assert "10.4.0.1/24" not in _addresses(api)
    config.apply("/ip address\nadd address=10.4.0.1/24 interface=ether1\n")
    assert "10.4.0.1/24" in _addresses(api)
    with pytest.raises(TrapError, match="input does not match any value of interface"):
        config.validate("/ip address\nadd address=10.4.1.1/24 interface=nosuch\n")
    with pytest.raises(TrapError, match="already have such address"):
        config.apply("/ip address\nadd address=10.4.0.1/24 interface=ether1\n")
    assert not list(api.path("file").select(Key("name")).where(Key("name") == "librouteros-import.rsc"))


def test_config_apply_round_trips_export(api: librouteros.api.Api) -> None:
    """An export applied to a freshly reset device recreates its items."""
    api.path("ip", "address").add(address="10.5.0.1/24", interface="ether4", comment="round trip")
    tuple(api("/system/identity/set", name="lab-rt"))
    text = api.config().export()
    tuple(api("/ip/address/remove", **{".id": str(next(iter(api.path("ip", "address")))[".id"])}))
    tuple(api("/system/identity/set", name="MikroTik"))
    api.config().apply(text)
    assert _addresses(api) == ["10.5.0.1/24"]
    assert next(iter(api("/system/identity/print")))["name"] == "lab-rt"


def test_config_backup_save_exists_load(sim: BackgroundFleet, api: librouteros.api.Api) -> None:
    """backup_load() restores the saved configuration and drops the connection like a reboot."""
    config = api.config()
    api.path("ip", "address").add(address="10.6.0.1/24", interface="ether1")
    config.backup_save("before")
    assert config.backup_exists("before")
    api.path("ip", "address").add(address="10.6.1.1/24", interface="ether1")
    with pytest.raises((ConnectionClosed, ConnectionError, OSError)):
        config.backup_load("before")
        tuple(api("/system/identity/print"))
    fresh = _connect(sim)
    assert _addresses(fresh) == ["10.6.0.1/24"]
    fresh.close()


def test_config_armed_rollback_fires(sim: BackgroundFleet, api: librouteros.api.Api) -> None:
    """An armed rollback that is not disarmed restores the backup when its timer fires."""
    config = api.config()
    api.path("ip", "address").add(address="10.7.0.1/24", interface="ether1")
    config.arm_rollback(1)
    assert config.rollback_pending()
    api.path("ip", "address").add(address="10.7.1.1/24", interface="ether2")
    deadline = time.monotonic() + ROLLBACK_WAIT
    addresses: list[str] = []
    while time.monotonic() < deadline:
        try:
            probe = _connect(sim)
            addresses = _addresses(probe)
            probe.close()
        except (ConnectionClosed, ConnectionError, OSError, TrapError):
            addresses = []
        if addresses == ["10.7.0.1/24"]:
            break
        time.sleep(0.1)
    assert addresses == ["10.7.0.1/24"]
    after = _connect(sim)
    assert not after.config().rollback_pending()
    after.close()


def test_config_disarmed_rollback_keeps_change(sim: BackgroundFleet, api: librouteros.api.Api) -> None:
    """cancel_rollback() removes the job and the backup, so the change stays."""
    config = api.config()
    config.arm_rollback(1)
    api.path("ip", "address").add(address="10.8.0.1/24", interface="ether1")
    config.cancel_rollback()
    assert not config.rollback_pending()
    assert not config.backup_exists("librouteros-rollback")
    time.sleep(1.5)  # NOTE: waits past the one-second timer to show that it no longer fires.
    assert _addresses(api) == ["10.8.0.1/24"]


def test_config_rollback_needs_job_policies(sim: BackgroundFleet, api: librouteros.api.Api) -> None:
    """The service account cannot arm a job whose policies it lacks (ftp, reboot)."""
    service = librouteros.connect(HOST, "tikflow", sim.fleet.service_password, port=sim.port("r1"), timeout=WAIT)
    with pytest.raises(TrapError, match=r"not enough permissions \(9\)"):
        service.config().arm_rollback(5)
    service.config().arm_rollback(5, policy="read,write,policy,test")
    assert service.config().rollback_pending()
    service.config().cancel_rollback()
    service.close()


def test_config_replace_resets_and_runs_script(sim: BackgroundFleet, api: librouteros.api.Api) -> None:
    """replace() wipes the configuration, reboots and runs the uploaded script."""
    api.path("ip", "address").add(address="10.9.0.1/24", interface="ether1")
    with pytest.raises((ConnectionClosed, ConnectionError, OSError)):
        api.config().replace("/ip address\nadd address=10.9.9.1/24 interface=ether2\n")
        tuple(api("/system/identity/print"))
    fresh = _connect(sim)
    assert _addresses(fresh) == ["10.9.9.1/24"]
    fresh.close()


def test_dead_man_job_removes_itself_and_restores(sim: BackgroundFleet, api: librouteros.api.Api) -> None:
    """A job whose on-event removes itself and loads a backup restores the saved state once."""
    api.path("ip", "address").add(address="10.10.0.1/24", interface="ether1")
    tuple(api("/system/backup/save", name="dead-man", **{"dont-encrypt": "yes"}))
    api.path("system", "scheduler").add(
        name="dead-man", interval="1s", policy="read,write,policy,test,sensitive",
        **{"on-event": '/system scheduler remove [find name="dead-man"]; '
                       '/system backup load name="dead-man.backup" password=""'},
    )
    api.path("ip", "address").add(address="10.10.1.1/24", interface="ether2")
    deadline = time.monotonic() + ROLLBACK_WAIT
    addresses: list[str] = []
    jobs: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        try:
            probe = _connect(sim)
            addresses = _addresses(probe)
            jobs = list(probe.path("system", "scheduler"))
            probe.close()
        except (ConnectionClosed, ConnectionError, OSError, TrapError):
            time.sleep(0.1)  # The device is rebooting; try again shortly.
            continue
        if addresses == ["10.10.0.1/24"]:
            break
        time.sleep(0.1)
    assert addresses == ["10.10.0.1/24"]
    assert jobs == []


async def test_async_config_export_apply_rollback(sim: BackgroundFleet) -> None:
    """AsyncConfig exports, applies and fires an armed rollback like the sync helper."""
    import asyncio

    sim.run(sim.fleet.restart("r1", keep_state=False))
    port = sim.port("r1")
    api = await librouteros.async_connect(HOST, "admin", sim.fleet.admin_password, port=port, timeout=WAIT)
    config = api.config()
    await config.apply("/ip address\nadd address=10.11.0.1/24 interface=ether1\n")
    assert "address=10.11.0.1/24" in await config.export()
    await config.arm_rollback(1)
    await config.apply("/ip address\nadd address=10.11.1.1/24 interface=ether2\n")
    deadline = time.monotonic() + ROLLBACK_WAIT
    addresses: list[str] = []
    while time.monotonic() < deadline:
        try:
            probe = await librouteros.async_connect(HOST, "admin", sim.fleet.admin_password, port=port, timeout=WAIT)
            addresses = [str(row["address"]) async for row in probe.path("ip", "address")]
            await probe.close()
        except (ConnectionClosed, ConnectionError, OSError, TrapError):
            addresses = []
        if addresses == ["10.11.0.1/24"]:
            break
        await asyncio.sleep(0.1)
    assert addresses == ["10.11.0.1/24"]
