"""Fleets of simulated devices: endpoints, ports, versions, scale and the simulate command."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import librouteros
import pytest

from simulator.fleet import TRANSPORTS, Fleet
from simulator.runner import SAMPLES

HOST = "127.0.0.1"
WAIT = 10.0
SCALE_DEVICES = 1000
SCALE_MEMORY_LIMIT = 1024 * 1024 * 1024
SCALE_ANSWER_LIMIT = 10.0
ROOT = Path(__file__).parents[2]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _free_port_block(size: int) -> int:
    """Return the first port of ``size`` consecutive ports that are free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            first = probe.getsockname()[1]
        if first + size >= 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + size):
                sock = socket.socket()
                sock.bind((HOST, port))
                sockets.append(sock)
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no block of free ports found")


async def test_fleet_endpoints_list_every_transport() -> None:
    """endpoints() gives name, version, credentials and host:port for each transport."""
    async with Fleet(2, transports=("api", "api-ssl")) as fleet:
        entries = fleet.endpoints()
    assert [entry["name"] for entry in entries] == ["r1", "r2"]
    for entry in entries:
        assert entry["version"] == "7.19"
        assert entry["username"] == "admin"
        assert entry["password"]
        assert entry["api"].startswith(f"{HOST}:")
        assert entry["api-ssl"].startswith(f"{HOST}:")
        assert len(entry["tls_fingerprint"]) == 64


async def test_fleet_password_never_empty() -> None:
    """Each fleet start makes new, non-empty passwords."""
    first, second = Fleet(1, transports=("api",)), Fleet(1, transports=("api",))
    assert first.admin_password
    assert first.admin_password != second.admin_password
    assert first.service_password != first.admin_password


async def test_fleet_base_port_assigns_blocks() -> None:
    """With a base port each device takes one block of five consecutive ports."""
    base = _free_port_block(2 * len(TRANSPORTS))
    async with Fleet(2, transports=("api", "api-ssl"), base_port=base) as fleet:
        assert fleet.device("r1").ports == {"api": base, "api-ssl": base + 1}
        assert fleet.device("r2").ports == {"api": base + 5, "api-ssl": base + 6}


async def test_fleet_v6_has_no_rest() -> None:
    """A RouterOS 6 device serves API and SSH but no REST."""
    async with Fleet(1, version="6.49", transports=("api", "rest", "rest-ssl")) as fleet:
        assert set(fleet.device("r1").ports) == {"api"}
        assert fleet.endpoints()[0]["version"] == "6.49"


async def test_fleet_devices_have_separate_state() -> None:
    """A change on one device does not show on another built from the same export."""
    async with Fleet(2, export=SAMPLES / "lab-router.rsc", transports=("api",)) as fleet:
        ports = [fleet.device(name).ports["api"] for name in ("r1", "r2")]
        first = await librouteros.async_connect(HOST, "admin", fleet.admin_password, port=ports[0], timeout=WAIT)
        await first.path("ip", "address").add(address="10.99.0.1/24", interface="ether2")
        await first.close()
        second = await librouteros.async_connect(HOST, "admin", fleet.admin_password, port=ports[1], timeout=WAIT)
        addresses = [row["address"] async for row in second.path("ip", "address")]
        await second.close()
    assert addresses == ["192.168.77.1/24", "10.20.0.2/30"]


async def test_fleet_unknown_device_named() -> None:
    """Asking for a missing device names the known ones."""
    fleet = Fleet(2, transports=("api",))
    with pytest.raises(KeyError, match="no device 'r7'; known devices: r1, r2"):
        fleet.device("r7")
    with pytest.raises(ValueError, match="unknown transport 'telnet'"):
        Fleet(1, transports=("telnet",))


async def _probe(fleet: Fleet, name: str, limit: asyncio.Semaphore) -> int:
    async with limit:
        port = fleet.device(name).ports["api"]
        api = await librouteros.async_connect(HOST, "admin", fleet.admin_password, port=port, timeout=WAIT)
        rows = [row async for row in api.path("ip", "address")]
        await api.close()
        return len(rows)


async def test_fleet_thousand_devices_fit() -> None:
    """1,000 devices from one export stay under 1 GiB and all reply within 10 s."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    before = _rss_bytes()
    fleet = Fleet(SCALE_DEVICES, export=SAMPLES / "lab-router.rsc", transports=("api",))
    await fleet.start()
    try:
        started = time.monotonic()
        limit = asyncio.Semaphore(100)
        counts = await asyncio.wait_for(
            asyncio.gather(*(_probe(fleet, device.name, limit) for device in fleet.devices)), SCALE_ANSWER_LIMIT
        )
        elapsed = time.monotonic() - started
        grown = _rss_bytes() - before
    finally:
        await fleet.stop()
    assert counts == [2] * SCALE_DEVICES
    assert elapsed < SCALE_ANSWER_LIMIT
    assert grown < SCALE_MEMORY_LIMIT


def test_simulate_command_prints_json_lines() -> None:
    """``python -m simulator --json`` prints one JSON object per device and keeps serving."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--devices", "2", "--json", "--version", "6.49"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        entries = [json.loads(line) for line in lines]
        assert [entry["name"] for entry in entries] == ["r1", "r2"]
        assert entries[0]["version"] == "6.49"
        assert "rest" not in entries[0]
        host, port = entries[0]["api"].split(":")
        api = librouteros.connect(host, entries[0]["username"], entries[0]["password"], port=int(port), timeout=WAIT)
        assert next(iter(api("/system/resource/print")))["version"].startswith("6.49")
        api.close()
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(WAIT)
    assert process.returncode == 0


def test_simulate_command_rejects_bad_version() -> None:
    """An unsupported --version fails with a message naming the choices."""
    completed = subprocess.run(
        [sys.executable, "-m", "simulator", "--version", "5.26"],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT, env={**os.environ, "COLUMNS": "300"},
    )
    assert completed.returncode != 0
    assert "use one of 7.19, 6.49" in completed.stderr


async def test_fleet_https_uses_published_certificate() -> None:
    """REST over HTTPS presents the certificate whose fingerprint endpoints() publishes."""
    import hashlib
    import ssl

    async with Fleet(1, transports=("rest-ssl",)) as fleet:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, fleet.device("r1").ports["rest-ssl"], ssl=context), WAIT
        )
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
        published = fleet.endpoints()[0]["tls_fingerprint"]
    assert hashlib.sha256(der).hexdigest() == published


async def test_fleet_export_as_file_name_or_text() -> None:
    """export= accepts a file name string as well as the export text itself."""
    sample = SAMPLES / "lab-router-v6.rsc"
    from_name = Fleet(1, export=str(sample), transports=("api",))
    from_text = Fleet(1, export=sample.read_text(), transports=("api",))
    assert from_name.template.version == "6.49.10"
    assert from_text.template.version == "6.49.10"


def test_simulate_command_port_in_use(tmp_path: Path) -> None:
    """A busy --base-port and a broken export fail with a message, not a traceback."""
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        completed = subprocess.run(
            [sys.executable, "-m", "simulator", "--base-port", str(port)],
            cwd=ROOT, capture_output=True, text=True, timeout=WAIT,
        )
    assert completed.returncode == 1
    assert "pick another --base-port" in completed.stderr
    assert "Traceback" not in completed.stderr
    broken = tmp_path / "broken.rsc"
    broken.write_text('/ip address\nadd comment="never closed\n')
    completed = subprocess.run(
        [sys.executable, "-m", "simulator", "--from-export", str(broken)],
        cwd=ROOT, capture_output=True, text=True, timeout=WAIT,
    )
    assert completed.returncode == 1
    assert "cannot load export" in completed.stderr
