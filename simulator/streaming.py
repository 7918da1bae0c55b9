"""Commands that stream results until stopped: ``/ping`` and ``/interface/monitor-traffic``.

On RouterOS these run until cancelled. Clients bound them with ``count`` (ping), ``once``
or ``duration``; each result row of a ``duration`` run carries ``.section``. The handlers
here take the same arguments as :func:`simulator.executor.execute` handlers and return the
rows of a bounded run, so the REST and console front ends (and the binary API, once it
registers them) share one implementation.

The simulated network is quiet: traffic counters are zero, and a ping is answered when
its target is a device address, a loopback address or inside a connected subnet.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping

from simulator.executor import CATEGORY_ARGUMENT, CommandError, Result, Session, Trap

StreamingHandler = Callable[[Session, str, dict[str, str], list[str]], Result]

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_TRAFFIC_COUNTERS = (
    "rx-packets-per-second", "rx-bits-per-second", "fp-rx-packets-per-second", "fp-rx-bits-per-second",
    "rx-drops-per-second", "rx-errors-per-second", "tx-packets-per-second", "tx-bits-per-second",
    "fp-tx-packets-per-second", "fp-tx-bits-per-second", "tx-queue-drops-per-second",
    "tx-drops-per-second", "tx-errors-per-second",
)
# Upper bound on rows of one bounded run, so `count=1000000` cannot exhaust memory.
MAX_ROWS = 10_000


def parse_duration(text: str) -> float:
    """Return the seconds of a RouterOS duration such as ``3s``, ``1m30s``, ``500ms`` or ``10``.

    Raises:
        ValueError: the text is not a duration.
    """
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(f"invalid duration {text!r}: use a number of seconds or units such as 3s, 1m, 500ms")
    return total


def runs_bounded(command: str, attributes: Mapping[str, str]) -> bool:
    """Return whether a streaming command was bounded (``once``, ``duration``, ping ``count``).

    Any ``once`` value turns it on except ``false``/``no``: RouterOS 7.22 was seen to keep
    streaming with ``once="false"``.
    """
    once = attributes.get("once")
    if once is not None and once not in ("false", "no"):
        return True
    if "duration" in attributes:
        return True
    return command in PING_COMMANDS and "count" in attributes


def sections(attributes: Mapping[str, str]) -> int:
    """Return how many result sections a bounded run produces (one per second of duration)."""
    if "duration" not in attributes:
        return 1
    try:
        seconds = parse_duration(attributes["duration"])
    except ValueError as error:
        raise CommandError(Trap(f"invalid value for argument duration ({error})", CATEGORY_ARGUMENT)) from None
    return max(1, min(MAX_ROWS, int(seconds)))


def execute_streaming(session: Session, command: str, attrs: dict[str, str]) -> Result:
    """Run a bounded streaming command like :func:`simulator.executor.execute` runs others.

    Injected fault traps apply, and failures come back as traps instead of being raised.
    """
    try:
        if session.faults is not None:
            injected = session.faults.trap_for(command)
            if injected is not None:
                raise CommandError(injected)
        return STREAMING_HANDLERS[command](session, command, attrs, [])
    except CommandError as error:
        return Result(traps=error.traps)


def monitor_traffic(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/interface/monitor-traffic interface=ether1[,ether2] once|duration=N``."""
    names = [name for name in attrs.get("interface", "").split(",") if name]
    if not names:
        raise CommandError(Trap("missing value for argument interface", CATEGORY_ARGUMENT))
    for name in names:
        if session.state.find_interface(name) is None:
            raise CommandError(Trap("input does not match any value of interface", CATEGORY_ARGUMENT))
    rounds = sections(attrs)
    rows = []
    for section in range(rounds):
        for name in names:
            row = {"name": name, **dict.fromkeys(_TRAFFIC_COUNTERS, "0")}
            if "duration" in attrs:
                row[".section"] = str(section)
            rows.append(row)
    return Result(rows=rows)


def ping(session: Session, command: str, attrs: dict[str, str], queries: list[str]) -> Result:
    """``/ping address=X count=N`` (or ``once``/``duration``): one row per probe."""
    address = attrs.get("address", "")
    if not address:
        raise CommandError(Trap("missing value for argument address", CATEGORY_ARGUMENT))
    try:
        target = ipaddress.ip_address(address)
    except ValueError:
        raise CommandError(Trap("invalid value for argument address", CATEGORY_ARGUMENT)) from None
    probes = _probe_count(attrs)
    reachable = _reachable(session, target)
    rows = []
    for seq in range(probes):
        sent = seq + 1
        received = sent if reachable else 0
        row = {"seq": str(seq), "host": address, "sent": str(sent), "received": str(received)}
        if reachable:
            row.update({"size": "56", "ttl": "64", "time": "0ms"})
            row.update({"min-rtt": "0ms", "avg-rtt": "0ms", "max-rtt": "0ms"})
        else:
            row["status"] = "timeout"
        row["packet-loss"] = str(100 - received * 100 // sent)
        rows.append(row)
    return Result(rows=rows)


def _probe_count(attrs: Mapping[str, str]) -> int:
    raw = attrs.get("count")
    if raw is None:
        return sections(attrs)
    if not raw.isdigit() or int(raw) == 0:
        raise CommandError(Trap("invalid value for argument count", CATEGORY_ARGUMENT))
    return min(MAX_ROWS, int(raw))


def _reachable(session: Session, target: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if target.is_loopback:
        return True
    table = session.state.table("/ip/address")
    for item in table.items if table is not None else []:
        if item.get("disabled") == "true":
            continue
        try:
            interface = ipaddress.ip_interface(item.get("address", ""))
        except ValueError:
            continue
        if target == interface.ip or target in interface.network:
            return True
    return False


PING_COMMANDS = frozenset({"/ping", "/tool/ping"})
STREAMING_HANDLERS: dict[str, StreamingHandler] = {
    "/ping": ping,
    "/tool/ping": ping,
    "/interface/monitor-traffic": monitor_traffic,
}
