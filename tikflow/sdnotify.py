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

_WARN_EVERY_FAILURES = 100


def notify(state: str) -> bool:
    """Send one state string such as ``READY=1`` or ``WATCHDOG=1`` to systemd.

    Returns:
        True when the datagram was sent, False when ``NOTIFY_SOCKET`` is unset or sending failed.
        A failed send is logged, not raised, because a missed notification must not stop the
        service.
    """
    if not os.environ.get("NOTIFY_SOCKET"):
        return False
    error = _send(state)
    if error is not None:
        logger.warning("systemd notification %r failed: %s", state, error)
        return False
    return True


def _send(state: str) -> str | None:
    """Send ``state`` to ``NOTIFY_SOCKET``; return None on success or the reason it failed."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        # A leading "@" names a socket in the Linux abstract namespace.
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return "NOTIFY_SOCKET is not a unix socket path"

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


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
    failures = 0
    while True:
        error = _send("WATCHDOG=1")
        if error is None:
            failures = 0
        else:
            failures += 1
            # A socket that stays unusable is reported once, then every 100th failed ping.
            if failures % _WARN_EVERY_FAILURES == 1:
                logger.warning("systemd watchdog ping failed %d time(s): %s", failures, error)
        await asyncio.sleep(timeout / 2)
