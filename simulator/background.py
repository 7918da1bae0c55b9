"""Run a :class:`~simulator.fleet.Fleet` on its own event loop in a background thread.

Blocking clients (librouteros ``connect()``, httpx sync) can then talk to the simulator
from the calling thread, and async tests can use it from any loop. Usage::

    with BackgroundFleet(Fleet(2)) as fleet:
        api = librouteros.connect("127.0.0.1", "admin", fleet.admin_password, port=fleet.port("r1", "api"))
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from simulator.fleet import Fleet

T = TypeVar("T")
START_TIMEOUT = 60.0


class BackgroundFleet:
    """Owns a thread with an event loop that serves ``fleet`` until :meth:`stop`."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="simulator-fleet", daemon=True)

    def start(self) -> Fleet:
        """Start the loop thread and the fleet; returns the running fleet."""
        self._thread.start()
        self.run(self.fleet.start())
        return self.fleet

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = START_TIMEOUT) -> T:
        """Run ``coroutine`` on the fleet's loop and wait up to ``timeout`` seconds for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, function: Any, *args: Any) -> Any:
        """Call a plain function on the fleet's loop (for state changes) and return its result."""

        async def invoke() -> Any:
            return function(*args)

        return self.run(invoke())

    def port(self, device: str, transport: str = "api") -> int:
        """Return the TCP port of ``transport`` on ``device``."""
        return self.fleet.device(device).ports[transport]

    def stop(self) -> None:
        """Stop the fleet, then the loop and its thread."""
        try:
            self.run(self.fleet.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    def __enter__(self) -> BackgroundFleet:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
