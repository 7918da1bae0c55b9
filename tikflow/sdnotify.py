"""systemd readiness and watchdog notifications, without a libsystemd dependency.

A unit with ``Type=notify`` waits for ``READY=1`` before it counts the service as started, and
a unit with ``WatchdogSec=`` restarts the service unless ``WATCHDOG=1`` arrives in time. systemd
passes the socket for both in ``NOTIFY_SOCKET`` and the watchdog timeout in ``WATCHDOG_USEC``.
Outside systemd neither variable is set, so every function here does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

logger = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send one state string such as ``READY=1`` or ``WATCHDOG=1`` to systemd.

    Returns:
        True when the datagram was sent, False when ``NOTIFY_SOCKET`` is unset or sending failed.
        A failed send is logged, not raised, because a missed notification must not stop the
        service.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        # A leading "@" names a socket in the Linux abstract namespace.
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        logger.warning("NOTIFY_SOCKET is not a unix socket path, so %r was not sent", state)
        return False

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        logger.warning("systemd notification %r failed: %s", state, exc.strerror or exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Return the watchdog timeout in seconds, or None when no watchdog watches this process.

    systemd restarts the service when no ``WATCHDOG=1`` arrives within this time, so callers
    should send one at least every half of it. A ``WATCHDOG_PID`` naming another process means
    the watchdog belongs to that process, as ``sd_watchdog_enabled(3)`` specifies.
    """
    raw_usec = os.environ.get("WATCHDOG_USEC")
    if not raw_usec:
        return None
    owner = os.environ.get("WATCHDOG_PID")
    if owner and owner.strip() != str(os.getpid()):
        return None
    try:
        usec = int(raw_usec)
    except ValueError:
        logger.warning("WATCHDOG_USEC=%r is not an integer, so watchdog pings are off", raw_usec)
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000


async def run_watchdog() -> None:
    """Send ``WATCHDOG=1`` every half watchdog timeout until cancelled, or return if none is set.

    Run it as a task beside the event loop's real work: when the loop stalls, the pings stop
    and systemd restarts the service.
    """
    timeout = watchdog_interval()
    if timeout is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(timeout / 2)
