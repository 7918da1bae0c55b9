"""Failures a simulated device shows on request at run time.

Tests switch these on in-process (``fleet.device("r1").faults.trap_on(...)``) or over the
control endpoint (``POST /devices/{name}/faults`` with the JSON that
:meth:`Faults.apply` reads). Transports consult them on every connection and reply.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from simulator.executor import Trap


@dataclass
class TrapRule:
    """Rule that replaces ``command`` with a trap on every call, or only on call number ``nth``."""

    command: str
    message: str
    category: int | None = None
    nth: int | None = None
    calls: int = 0

    def fires(self) -> bool:
        """Count one call and return whether this call gets the trap."""
        self.calls += 1
        return self.nth is None or self.calls == self.nth


@dataclass
class Faults:
    """The faults of one device; all are off by default.

    Attributes:
        latency: Seconds added before each reply.
        jitter: Up to this many extra seconds, chosen at random per reply.
        drop_after_sentences: Close an API connection after it has sent this many sentences.
        hang: Accept connections but never reply.
        refuse_logins: Fail every login with ``invalid user name or password (6)``.
        rest_invalid_json: REST replies put raw control bytes into JSON strings, as some
            RouterOS versions do with DHCP host names.
        traps: Commands replaced by a trap instead of running.
    """

    latency: float = 0.0
    jitter: float = 0.0
    drop_after_sentences: int | None = None
    hang: bool = False
    refuse_logins: bool = False
    rest_invalid_json: bool = False
    traps: list[TrapRule] = field(default_factory=list)

    def set_latency(self, seconds: float, jitter: float = 0.0) -> None:
        """Delay every reply by ``seconds`` plus up to ``jitter`` random seconds."""
        if seconds < 0 or jitter < 0:
            raise ValueError("latency and jitter must be zero or positive seconds")
        self.latency = seconds
        self.jitter = jitter

    def drop_after(self, sentences: int | None) -> None:
        """Close API connections after ``sentences`` reply sentences; ``None`` turns it off."""
        if sentences is not None and sentences < 0:
            raise ValueError("drop_after needs a sentence count of zero or more")
        self.drop_after_sentences = sentences

    def trap_on(self, command: str, message: str, category: int | None = None, nth: int | None = None) -> TrapRule:
        """Reply to ``command`` (``/ip/address/add``) with a trap, optionally only on call ``nth``."""
        if not command.startswith("/"):
            raise ValueError(f"command {command!r} must be an API path such as /ip/address/add")
        if nth is not None and nth < 1:
            raise ValueError("nth counts calls from 1")
        rule = TrapRule(command=command, message=message, category=category, nth=nth)
        self.traps.append(rule)
        return rule

    def trap_for(self, command: str) -> Trap | None:
        """Return the trap an injected rule gives ``command``, counting the call."""
        for rule in self.traps:
            if rule.command == command and rule.fires():
                return Trap(rule.message, rule.category)
        return None

    def reply_delay(self) -> float:
        """Seconds to wait before sending a reply."""
        if self.jitter:
            return self.latency + random.uniform(0, self.jitter)  # noqa: S311 - not security related.
        return self.latency

    def clear(self) -> None:
        """Switch every fault off."""
        self.__init__()  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        """Return the faults as JSON-ready data."""
        return asdict(self)

    def apply(self, changes: dict[str, Any]) -> None:
        """Update faults from JSON such as ``{"latency": 0.2, "traps": [{"command": ...}]}``.

        Keys left out keep their value; ``"clear": true`` first switches everything off.
        Raises ValueError naming the first unknown key or bad value.
        """
        allowed = {"clear", "latency", "jitter", "drop_after_sentences", "hang", "refuse_logins",
                   "rest_invalid_json", "traps"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; use one of {', '.join(sorted(allowed))}")
        if changes.get("clear"):
            self.clear()
        if "latency" in changes or "jitter" in changes:
            self.set_latency(float(changes.get("latency", self.latency)), float(changes.get("jitter", self.jitter)))
        if "drop_after_sentences" in changes:
            value = changes["drop_after_sentences"]
            self.drop_after(None if value is None else int(value))
        for flag in ("hang", "refuse_logins", "rest_invalid_json"):
            if flag in changes:
                setattr(self, flag, bool(changes[flag]))
        for rule in changes.get("traps", []):
            if not isinstance(rule, dict) or "command" not in rule or "message" not in rule:
                raise ValueError("each trap needs 'command' and 'message'")
            self.trap_on(rule["command"], rule["message"], rule.get("category"), rule.get("nth"))
