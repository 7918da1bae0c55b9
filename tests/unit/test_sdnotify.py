"""systemd notifications reach a real unix datagram socket, and stay silent outside systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tikflow import sdnotify


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd's notify socket."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_notify_sends_state_to_socket(listener, monkeypatch):
    """notify() delivers the exact state string as one datagram."""
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)

    assert sdnotify.notify("READY=1\nSTATUS=serving") is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"


def test_notify_reaches_abstract_socket(monkeypatch):
    """A NOTIFY_SOCKET starting with @ addresses the abstract namespace."""
    name = f"tikflow-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)

        assert sdnotify.notify("WATCHDOG=1") is True
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_notify_without_socket_returns_false(monkeypatch):
    """Outside systemd notify() is a no-op that reports False."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    assert sdnotify.notify("READY=1") is False


def test_notify_to_missing_socket_returns_false(tmp_path, monkeypatch):
    """A socket path without a listener yields False instead of an exception."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))

    assert sdnotify.notify("READY=1") is False


def test_notify_rejects_non_unix_address(monkeypatch):
    """Addresses that are neither a path nor abstract are not used."""
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")

    assert sdnotify.notify("READY=1") is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("500000", "self", 0.5),
        ("30000000", "1", None),
        ("0", None, None),
        ("soon", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval_reads_environment(monkeypatch, usec, pid, expected):
    """WATCHDOG_USEC becomes seconds, but only for the process WATCHDOG_PID names."""
    if usec is None:
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is None:
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
    else:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)

    assert sdnotify.watchdog_interval() == expected


async def test_run_watchdog_pings_repeatedly(listener, monkeypatch):
    """run_watchdog() keeps sending WATCHDOG=1 until it is cancelled."""
    sock, path = listener
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "20000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    loop = asyncio.get_running_loop()

    task = asyncio.create_task(sdnotify.run_watchdog())
    try:
        first = await asyncio.wait_for(loop.sock_recv(sock, 64), timeout=5)
        second = await asyncio.wait_for(loop.sock_recv(sock, 64), timeout=5)
    finally:
        task.cancel()
    assert first == b"WATCHDOG=1"
    assert second == b"WATCHDOG=1"


async def test_run_watchdog_returns_without_watchdog(monkeypatch):
    """Without WATCHDOG_USEC the watchdog task finishes at once."""
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)

    await asyncio.wait_for(sdnotify.run_watchdog(), timeout=5)


async def test_run_watchdog_warns_once_for_dead_socket(tmp_path, monkeypatch, caplog):
    """A watchdog socket that stays unusable is logged once, not on every ping."""
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "2000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    pings = 0
    real_send = sdnotify._send

    def counting_send(state: str) -> str | None:
        nonlocal pings
        pings += 1
        if pings == 5:
            task.cancel()
        return real_send(state)

    monkeypatch.setattr(sdnotify, "_send", counting_send)
    with caplog.at_level("WARNING", logger="tikflow.sdnotify"):
        task = asyncio.create_task(sdnotify.run_watchdog())
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

    warnings = [record for record in caplog.records if "watchdog ping failed" in record.message]
    assert pings == 5
    assert len(warnings) == 1
    assert "failed 1 time(s)" in warnings[0].getMessage()
