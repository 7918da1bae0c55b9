"""Console safe mode: changes made while it is taken are undone unless it is released.

RouterOS keeps one safe-mode session per device. Ctrl-X takes or releases it, Ctrl-D or an
abnormal end of the console undoes every change made meanwhile (also changes from other
sessions), and ``/quit`` keeps them. The history has room for 100 actions, and one more
drops the session out of safe mode silently, without undo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.state import DeviceState, Item, Table

MAX_ACTIONS = 100


@dataclass
class SafeMode:
    """One taken safe-mode session on a device."""

    state: DeviceState
    owner: object
    actions: int = 0
    overflowed: bool = False
    _snapshot: dict[str, Table] = field(default_factory=dict)

    def take(self) -> None:
        """Remember the current configuration and start counting changes."""
        self._snapshot = self.state.snapshot()
        self.state.add_listener(self._count)

    def release(self) -> None:
        """Keep every change and stop watching."""
        self.state.remove_listener(self._count)

    def undo(self) -> None:
        """Restore the configuration from when safe mode was taken and stop watching.

        NOTE: the undo replaces whole tables, so listeners such as API ``listen`` see no
        change events for the restored items.
        """
        self.state.remove_listener(self._count)
        if not self.overflowed:
            self.state.restore(self._snapshot)

    @property
    def active(self) -> bool:
        """Whether the session is still in safe mode (it leaves on overflow)."""
        return not self.overflowed

    def _count(self, path: str, item: Item, dead: bool) -> None:
        self.actions += 1
        if self.actions > MAX_ACTIONS:
            self.overflowed = True
            self.state.remove_listener(self._count)


@dataclass
class SafeModeSlot:
    """The device-wide place for the one safe-mode session."""

    current: SafeMode | None = None

    def holder(self) -> SafeMode | None:
        """Return the active session, dropping one that overflowed."""
        if self.current is not None and not self.current.active:
            self.current = None
        return self.current
