"""Run console scripts through the executor, and fire ``/system/scheduler`` jobs on time.

Scripts come from ``/import`` files, ``run-after-reset`` files and scheduler ``on-event``
sources. Each line becomes an API command that runs with the permissions of the session. The first
failing line stops the script, as on RouterOS.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from simulator.executor import Session, execute, visible_rows
from simulator.script import ScriptSyntaxError, parse_script
from simulator.state import DeviceState, UserInfo

logger = logging.getLogger(__name__)

_DURATION_PART = re.compile(r"(\d+)(ms|w|d|h|m|s)")
_CLOCK = re.compile(r"^(\d+):(\d{2}):(\d{2})$")
SCHEDULER_PATH = "/system/scheduler"
STARTUP_DELAY = 1.0
_FAILED_JOBS: set[str] = set()


class ScriptFailure(Exception):
    """A script line failed; the message names the line."""


def parse_duration(value: str) -> float | None:
    """Parse ``1w2d3h4m5s``, ``100ms``, ``30`` (seconds) or ``00:01:30`` into seconds."""
    text = value.strip()
    if text.isdigit():
        return float(text)
    clock = _CLOCK.match(text)
    if clock:
        hours, minutes, seconds = (int(group) for group in clock.groups())
        return float(hours * 3600 + minutes * 60 + seconds)
    position = 0
    total = 0.0
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += int(match.group(1)) * units[match.group(2)]
        position = match.end()
    return total if position == len(text) and text else None


def run_script_text(session: Session, text: str, *, export_file: bool = False) -> None:
    """Run every command of ``text``; raise :class:`ScriptFailure` at the first failure.

    ``export_file`` marks a ``.rsc`` file (``/import``, ``run-after-reset``), which is read
    with the export parser of :mod:`routeros.rsc` first. Script sources and scheduler
    events use the console reader, because the export parser takes unknown command words
    such as ``run`` for menu names.
    """
    try:
        commands = _parse_export(text) if export_file else None
        if commands is None:
            commands = list(parse_script(text))
    except ScriptSyntaxError as error:
        raise ScriptFailure(f"syntax error {error}") from error
    for command in commands:
        run_command(session, command)


def _parse_export(text: str) -> list[Any] | None:
    """Parse ``text`` as an export, or return ``None`` so the console reader tries it."""
    from routeros.rsc import RscSyntaxError, parse_export

    try:
        commands = list(parse_export(text).commands)
    except RscSyntaxError:
        return None
    has_content = any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines())
    return commands if commands or not has_content else None


def run_command(session: Session, command: Any) -> None:
    """Run one parsed console command (export or script shape) through the executor."""
    path = command.path.rstrip("/")
    api_command = f"{path}/{command.verb}" if path else f"/{command.verb}"
    attrs: dict[str, str] = {}
    for name, value in command.properties:
        attrs[name] = "" if value is None else value
    ids = _selected_ids(session.state, path, command)
    if ids is not None:
        if not ids:
            return  # A find that matches nothing changes nothing.
        attrs[".id"] = ",".join(ids)
    result = execute(session, api_command, attrs)
    if result.traps:
        raise ScriptFailure(f"{result.traps[0].message} (line {command.line} column 1)")
    if result.after_reply is not None:
        result.after_reply()


def _selected_ids(state: DeviceState, path: str, command: Any) -> list[str] | None:
    selector = (command.selector or "").strip()
    selector_filter = command.selector_filter
    if not selector and not selector_filter:
        return None
    rows = visible_rows(state, path)
    if selector_filter:
        wanted = dict(selector_filter)
        return [row[".id"] for row in rows if all(_filter_equal(row.get(k), v) for k, v in wanted.items())]
    if selector.isdigit():
        index = int(selector)
        return [rows[index][".id"]] if index < len(rows) else [selector]
    return [part for part in selector.split(",") if part]


def _filter_equal(stored: str | None, wanted: str) -> bool:
    aliases = {"yes": "true", "no": "false"}
    return stored is not None and (stored == wanted or stored == aliases.get(wanted))


class Scheduler:
    """Fires the ``/system/scheduler`` jobs of one device on an asyncio loop.

    Only timing properties re-arm a job, so the run counter it updates itself does not
    restart its timer. A reboot re-arms every job from the (possibly restored) table.
    """

    def __init__(self, state: DeviceState, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.state = state
        self.loop = loop or asyncio.get_running_loop()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._signatures: dict[str, tuple[str, ...]] = {}
        state.add_listener(self._on_change)
        state.add_reboot_listener(self._on_reboot)
        self._arm_all(boot=True)

    def close(self) -> None:
        """Cancel every timer and stop watching the state."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.state.remove_listener(self._on_change)
        self.state.remove_reboot_listener(self._on_reboot)

    def _on_change(self, path: str, item: dict[str, str], dead: bool) -> None:
        if path != SCHEDULER_PATH:
            return
        job_id = item.get(".id", "")
        if dead:
            self._cancel(job_id)
            return
        if self._signatures.get(job_id) != _signature(item):
            self._arm(item, boot=False)

    def _on_reboot(self) -> None:
        for job_id in list(self._timers):
            self._cancel(job_id)
        self._arm_all(boot=True)

    def _arm_all(self, *, boot: bool) -> None:
        table = self.state.table(SCHEDULER_PATH)
        for item in list(table.items) if table is not None else []:
            self._arm(item, boot=boot)

    def _cancel(self, job_id: str) -> None:
        timer = self._timers.pop(job_id, None)
        if timer is not None:
            timer.cancel()
        self._signatures.pop(job_id, None)

    def _arm(self, item: dict[str, str], *, boot: bool) -> None:
        job_id = item.get(".id", "")
        self._cancel(job_id)
        self._signatures[job_id] = _signature(item)
        delay = _first_delay(item, boot=boot)
        if delay is not None:
            self._timers[job_id] = self.loop.call_later(delay, self._fire, job_id)

    def _fire(self, job_id: str) -> None:
        self._timers.pop(job_id, None)
        table = self.state.table(SCHEDULER_PATH)
        item = table.find(job_id) if table is not None else None
        if item is None or item.get("disabled") == "true":
            return
        interval = parse_duration(item.get("interval", "0s") or "0s") or 0.0
        count = int(item.get("run-count", "0") or 0) + 1
        next_run = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + interval)) if interval else ""
        self.state.update_item(SCHEDULER_PATH, job_id, {"run-count": str(count), "next-run": next_run})
        if interval:
            self._timers[job_id] = self.loop.call_later(interval, self._fire, job_id)
        self._run_event(item)

    def _run_event(self, item: dict[str, str]) -> None:
        policies = frozenset(word for word in item.get("policy", "").split(",") if word)
        user = UserInfo(name=item.get("owner", "admin"), group="scheduler", policies=policies)
        session = Session(state=self.state, user=user, transport="scheduler")
        try:
            run_script_text(session, item.get("on-event", ""))
        except ScriptFailure as failure:
            name = item.get("name", "?")
            # Jobs loaded from exports often run scripts this runner cannot read, every
            # minute on every device, so only the first failure per job name in the
            # process is a warning.
            level = logging.DEBUG if name in _FAILED_JOBS else logging.WARNING
            _FAILED_JOBS.add(name)
            logger.log(level, "scheduler job %s failed: %s", name, failure)


def _signature(item: dict[str, str]) -> tuple[str, ...]:
    return tuple(item.get(key, "") for key in ("interval", "start-time", "start-date", "disabled"))


def _first_delay(item: dict[str, str], *, boot: bool) -> float | None:
    if item.get("disabled") == "true":
        return None
    start = item.get("start-time", "")
    interval = parse_duration(item.get("interval", "0s") or "0s") or 0.0
    if start == "startup":
        return STARTUP_DELAY if boot else None
    if interval > 0:
        return interval
    clock = _CLOCK.match(start)
    if clock:
        hours, minutes, seconds = (int(group) for group in clock.groups())
        now = time.gmtime()
        target = hours * 3600 + minutes * 60 + seconds
        current = now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
        return float((target - current) % 86400)
    return None
