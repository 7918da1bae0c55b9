"""The RouterOS console of a simulated device: what SSH sessions and ``/execute`` run.

A :class:`Console` keeps the session data a real console keeps: the current menu and the
item numbers of the last ``print`` per menu. It turns each line parsed by
:mod:`simulator.cli` into console API calls on :func:`simulator.executor.execute`. Replies are
formatted the way RouterOS prints them: tables, ``detail``, ``terse``, singleton key/value
lists and exports. Booleans print as ``yes``/``no``; values keep their raw bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from simulator import cli, streaming
from simulator import console_format as fmt
from simulator import export as exporter
from simulator import schema as schemas
from simulator.cli import CliCommand, CliError, Word
from simulator.executor import PERMISSION_DENIED, Result, Session, Trap, execute
from simulator.state import DeviceState

logger = logging.getLogger(__name__)

_PRINT_FLAGS = frozenset(
    {"detail", "terse", "brief", "without-paging", "count-only", "as-value", "value-list",
     "show-ids", "follow", "follow-only", "interval", "proplist", "file", "append", "from",
     "stats", "all"}
)
# Commands the console runs only after a y/N question, with the question's text.
CONFIRMATIONS = {
    "/system/reboot": "Reboot, yes? [y/N]: ",
    "/system/shutdown": "Shutdown, yes? [y/N]: ",
    "/system/backup/load": "Restore and reboot? [y/N]: ",
    "/system/reset-configuration": "Dangerous! Reset anyway? [y/N]: ",
}
_EXPORT_FLAGS = frozenset({"compact", "terse", "verbose", "file", "show-sensitive", "hide-sensitive", "where"})


@dataclass
class ConsoleOutput:
    """Text a console line produced, its error if any, and whether it asked to end (``/quit``)."""

    text: str = ""
    quit: bool = False
    error: CliError | None = None
    after_reply: list[Callable[[], None]] = field(default_factory=list)
    question: str | None = None
    _confirmed: Callable[[], ConsoleOutput] | None = None

    @property
    def failed(self) -> bool:
        """Whether the line ended with a console error."""
        return self.error is not None

    def answer(self, yes: bool) -> ConsoleOutput:
        """Run (``yes``) or drop the command that asked ``question`` and return its output."""
        if self._confirmed is None or not yes:
            return ConsoleOutput()
        return self._confirmed()


@dataclass
class ScriptRun:
    """Output of a script, its first error (which ended it) and actions to run afterwards."""

    output: str = ""
    error: str | None = None
    after_reply: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class Console:
    """One console session on a device, as a logged-in user sees it."""

    session: Session
    width: int = 80
    cwd: str = ""
    _numbers: dict[str, list[str]] = field(default_factory=dict)
    _after_reply: list[Callable[[], None]] = field(default_factory=list)

    @property
    def prompt(self) -> str:
        """The prompt RouterOS shows: ``[admin@MikroTik] /ip address> ``."""
        head = f"[{self.session.user.name}@{self._identity()}]"
        if not self.cwd:
            return f"{head} > "
        return f"{head} {cli.console_path(self.cwd)}> "

    def run_line(self, line: str, line_number: int = 1) -> ConsoleOutput:
        """Run one typed line (may hold several ``;``-separated commands).

        Actions that must wait until the output is sent (a reboot after ``/system backup
        load``) come back in ``after_reply`` for the transport to run.
        """
        output = self._run_line(line, line_number)
        output.after_reply, self._after_reply = self._after_reply, []
        return output

    def _run_line(self, line: str, line_number: int) -> ConsoleOutput:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            return ConsoleOutput()
        if stripped.startswith(":"):
            return self._run_scripting(stripped, line_number)
        try:
            commands = cli.parse_line(stripped, self.cwd, self._is_menu, line_number, self._is_command)
        except CliError as error:
            return ConsoleOutput(error.render() + "\n", error=error)
        chunks: list[str] = []
        for command in commands:
            try:
                output = self._run(command, line_number)
            except CliError as error:
                chunks.append(error.render() + "\n")
                return ConsoleOutput("".join(chunks), error=error)
            chunks.append(output.text)
            if output.quit:
                return ConsoleOutput("".join(chunks), quit=True)
            if output.question is not None:
                # Commands after one that asks for confirmation are not run.
                output.text = "".join(chunks)
                return output
        return ConsoleOutput("".join(chunks))

    def run_script(self, script: str) -> ScriptRun:
        """Run script text line by line until the end or the first error.

        The error text names the line, as RouterOS does for ``/import`` and ``/execute``.
        Scripts never ask for confirmation, so a reboot in a script just runs.
        """
        run = ScriptRun()
        chunks: list[str] = []
        for number, line in cli.split_statements(script):
            output = self.run_line(line, number)
            if output.question is not None:
                chunks.append(output.text)
                output = output.answer(True)
            run.after_reply.extend(output.after_reply)
            if output.error is not None:
                run.error = output.error.script_message()
                break
            chunks.append(output.text)
            if output.quit:
                break
        run.output = "".join(chunks)
        return run

    # -- dispatch -----------------------------------------------------------------

    def _run(self, command: CliCommand, line_number: int) -> ConsoleOutput:
        if command.verb is None:
            self.cwd = command.path
            return ConsoleOutput()
        if command.verb == "quit":
            return ConsoleOutput(quit=True)
        if command.verb == "print":
            return ConsoleOutput(self._print(command, line_number))
        if command.verb == "export":
            return ConsoleOutput(self._export(command, line_number))
        if command.verb in ("set", "remove", "enable", "disable", "unset", "comment"):
            return ConsoleOutput(self._change_items(command, line_number))
        if command.verb == "add":
            self._call(command, f"{command.path}/add", self._attributes(command), line_number)
            return ConsoleOutput()
        if command.verb == "find":
            self._find_command(command, line_number)
            return ConsoleOutput()
        if command.verb == "get":
            return ConsoleOutput(self._get(command, line_number) + "\n")
        if f"{command.path}/{command.verb}" in streaming.STREAMING_HANDLERS:
            return ConsoleOutput(self._stream(command, line_number))
        question = CONFIRMATIONS.get(f"{command.path}/{command.verb}")
        if question is not None:
            return ConsoleOutput(question=question, _confirmed=lambda: self._confirmed(command, line_number))
        return ConsoleOutput(self._generic(command, line_number))

    def _confirmed(self, command: CliCommand, line_number: int) -> ConsoleOutput:
        try:
            text = self._generic(command, line_number)
        except CliError as error:
            return ConsoleOutput(error.render() + "\n", error=error)
        output = ConsoleOutput(text)
        output.after_reply, self._after_reply = self._after_reply, []
        return output

    def _run_scripting(self, line: str, line_number: int) -> ConsoleOutput:
        """Run ``:put``, the one scripting command automation relies on.

        ``:put [/ip address add ...]`` prints what the inner command returns: the new
        ``.id`` of ``add``, the ids of ``find`` joined by ``;``, the count of
        ``print count-only``. Other scripting commands are reported as unknown.
        """
        try:
            statements = cli.tokenize(line, line_number)
            chunks = []
            for words in statements:
                if not words:
                    continue
                head = words[0]
                if head.name != ":put":
                    raise CliError(f"bad command name {head.name.lstrip(':')}", head.column + 1, line_number)
                values = [self._evaluate(word, line_number) for word in words[1:]]
                chunks.append("".join(values) + "\n")
        except CliError as error:
            return ConsoleOutput(error.render() + "\n", error=error)
        return ConsoleOutput("".join(chunks))

    def _evaluate(self, word: Word, line_number: int) -> str:
        if word.find is None:
            return _word_text(word)
        command = cli.parse_words(word.find, self.cwd, self._is_menu, line_number, self._is_command)
        if command.verb == "find":
            return ";".join(self._find_command(command, line_number))
        if command.verb == "add":
            result = self._call(command, f"{command.path}/add", self._attributes(command), line_number)
            return result.done.get("ret", "")
        output = self._run(command, line_number)
        return output.text.rstrip("\n")

    # -- print --------------------------------------------------------------------

    def _print(self, command: CliCommand, line_number: int) -> str:
        for word in command.arguments:
            if word.name not in _PRINT_FLAGS:
                raise CliError("expected end of command", word.column, line_number)
        # Whole items are read because `where` may test properties that proplist leaves out.
        result = self._call(command, f"{command.path}/print", {}, line_number)
        rows = result.rows
        if command.where is not None:
            rows = [row for row in rows if command.where.matches(fmt.cli_values(command.path, row))]
        proplist = command.argument("proplist")
        if proplist is not None and proplist.value:
            names = [".id", *proplist.value.split(",")]
            rows = [{name: row[name] for name in names if name in row} for row in rows]
        if command.has_flag("count-only"):
            return f"{len(rows)}\n"
        ids = [row[".id"] for row in rows if ".id" in row]
        if not ids and len(rows) <= 1 and self._is_singleton(command.path, rows):
            return fmt.singleton(command.path, rows[0] if rows else {})
        self._numbers[command.path] = ids
        version7 = self.session.state.version_at_least(7)
        show_ids = command.has_flag("show-ids")
        if command.has_flag("terse"):
            return fmt.terse(command.path, rows, show_ids=show_ids)
        if command.has_flag("detail"):
            return fmt.detail(command.path, rows, self.width, version7=version7, show_ids=show_ids)
        return fmt.table(command.path, rows, self.width, version7=version7, show_ids=show_ids)

    def _get(self, command: CliCommand, line_number: int) -> str:
        """Return one property: ``/system identity get name`` or ``/interface get ether1 mtu``."""
        words = [*command.items, *command.arguments]
        singleton = self._is_singleton(command.path, [])
        needed = 1 if singleton else 2
        if len(words) != needed:
            column = words[needed].column if len(words) > needed else command.column
            raise CliError("expected end of command", column, line_number)
        result = self._call(command, f"{command.path}/print", {}, line_number)
        rows = result.rows
        if not singleton:
            wanted = set(self._resolve_items(command, line_number, [words[0]]))
            rows = [row for row in rows if row.get(".id") in wanted or row.get("name") in wanted]
        if not rows:
            raise CliError("no such item")
        name = words[-1].name
        values = fmt.cli_values(command.path, rows[0])
        if name not in values:
            # RouterOS prints nothing for a known property that is not set.
            return ""
        return values[name]

    def _stream(self, command: CliCommand, line_number: int) -> str:
        """Run ``ping`` or ``monitor-traffic``; the first bare word is the address or interface.

        NOTE: the console cannot stream, so without ``count``, ``once`` or ``duration`` it
        prints one round where RouterOS would go on until Ctrl-C.
        """
        api_command = f"{command.path}/{command.verb}"
        attributes = self._attributes(command)
        target = "address" if api_command in streaming.PING_COMMANDS else "interface"
        bare = [word for word in command.arguments if word.value is None and word.name not in ("once",)]
        if bare and target not in attributes:
            attributes.pop(bare[0].name, None)
            attributes[target] = bare[0].name
        result = streaming.execute_streaming(self.session, api_command, attributes)
        if result.traps:
            raise self._console_error(command, api_command, result.traps, line_number)
        if target == "address":
            return fmt.ping_lines(result.rows)
        return "".join(fmt.singleton(command.path, row) for row in result.rows)

    # -- changes ------------------------------------------------------------------

    def _change_items(self, command: CliCommand, line_number: int) -> str:
        attributes = self._attributes(command)
        if command.items:
            ids = self._resolve_items(command, line_number, command.items)
            if not ids:
                # `set [ find name=nothing ] ...` on RouterOS does nothing and reports nothing.
                return ""
            attributes[".id"] = ",".join(ids)
        elif not self._is_singleton(command.path, []):
            raise CliError("missing value(s) of argument(s) numbers")
        self._call(command, f"{command.path}/{command.verb}", attributes, line_number)
        return ""

    def _resolve_items(self, command: CliCommand, line_number: int, items: list[Word]) -> list[str]:
        ids: list[str] = []
        for word in items:
            if word.find is not None:
                ids.extend(self._find(command.path, word.find, line_number))
                continue
            for part in word.name.split(","):
                ids.append(self._item_id(command.path, part, word, line_number))
        return ids

    def _item_id(self, path: str, part: str, word: Word, line_number: int) -> str:
        if part.isdigit() and not word.quoted:
            numbers = self._numbers.get(path)
            if numbers is None:
                numbers = [row[".id"] for row in self._rows(path) if ".id" in row]
            index = int(part)
            if index >= len(numbers):
                raise CliError("no such item")
            return numbers[index]
        return part

    def _find(self, path: str, words: tuple[Word, ...], line_number: int) -> list[str]:
        """Return the ids that ``[ find ... ]`` (the words inside the brackets) selects."""
        body = list(words)
        if not body or body[0].name != "find" or body[0].value is not None:
            column = body[0].column if body else 1
            raise CliError("syntax error", column, line_number)
        body = body[1:]
        if body and body[0].name == "where" and body[0].value is None:
            body = body[1:]
        return self._matching_ids(path, cli.parse_filter(body, line_number))

    def _find_command(self, command: CliCommand, line_number: int) -> list[str]:
        condition = command.where or cli.parse_filter(command.arguments, line_number)
        return self._matching_ids(command.path, condition)

    def _matching_ids(self, path: str, condition: cli.Filter) -> list[str]:
        rows = self._rows(path)
        return [row[".id"] for row in rows if ".id" in row and condition.matches(fmt.cli_values(path, row))]

    def _rows(self, path: str) -> list[dict[str, str]]:
        result = execute(self.session, f"{path}/print")
        return result.rows

    # -- export and other commands ------------------------------------------------

    def _export(self, command: CliCommand, line_number: int) -> str:
        state = self.session.state
        version7 = state.version_at_least(7)
        for word in command.arguments:
            known = word.name in _EXPORT_FLAGS
            if not known or (word.name == "show-sensitive" and not version7):
                raise CliError("expected end of command", word.column, line_number)
        if command.where is not None and (not command.path or not state.version_at_least(7, 13)):
            # `export where` exists from RouterOS 7.13 on, and only inside a menu.
            raise CliError("expected end of command", command.where_column, line_number)
        attributes = {word.name: word.value or "" for word in command.arguments}
        if "file" in attributes:
            self._call(command, f"{command.path}/export", attributes, line_number)
            return ""
        if command.where is not None:
            state = self._matching_copy(command.path, command.where)
        # Over the API an export returns nothing, so the console renders it itself.
        show_sensitive = command.has_flag("show-sensitive") or (
            not version7 and not command.has_flag("hide-sensitive")
        )
        needed = ("read", "sensitive") if show_sensitive else ("read",)
        if not all(self.session.can(policy) for policy in needed):
            raise CliError(PERMISSION_DENIED)
        # NOTE: `verbose` prints the same lines as `compact`, because the simulator's
        # exporter does not know every default value a verbose export lists.
        return exporter.render_export(
            state, terse=command.has_flag("terse"), show_sensitive=show_sensitive, menu=command.path or None
        )

    def _matching_copy(self, path: str, condition: cli.Filter) -> DeviceState:
        """Return a copy of the state whose ``path`` menu holds only the matching items."""
        wanted = set(self._matching_ids(path, condition))
        copy = self.session.state.deep_copy()
        table = copy.tables.get(path)
        if table is not None:
            table.items = [item for item in table.items if item.get(".id") in wanted]
        return copy

    def _generic(self, command: CliCommand, line_number: int) -> str:
        attributes = self._attributes(command)
        if command.items:
            attributes[".id"] = ",".join(self._resolve_items(command, line_number, command.items))
        result = self._call(command, f"{command.path}/{command.verb}", attributes, line_number)
        if command.path == "/system/backup" and command.verb == "save":
            return "Configuration backup saved\n"
        if result.rows:
            return fmt.detail(command.path, result.rows, self.width, version7=True)
        message = result.done.get("ret")
        return f"{message}\n" if message and not message.startswith("*") else ""

    # -- helpers ------------------------------------------------------------------

    def _call(self, command: CliCommand, api_command: str, attributes: dict[str, str], line_number: int) -> Result:
        result = execute(self.session, api_command, attributes)
        if result.traps:
            raise self._console_error(command, api_command, result.traps, line_number)
        if result.after_reply is not None:
            self._after_reply.append(result.after_reply)
        return result

    def _console_error(
        self, command: CliCommand, api_command: str, traps: list[Trap], line_number: int
    ) -> CliError:
        message = traps[0].message
        if message.startswith("unknown parameter "):
            name = message[len("unknown parameter ") :]
            word = command.argument(name) or command.argument(f"!{name}")
            return CliError("expected end of command", word.column if word else command.column, line_number)
        if message.startswith("no such item"):
            return CliError("no such item")
        if message.startswith("no such command or directory"):
            return CliError(f"bad command name {command.verb}", command.column, line_number)
        return CliError(message, line=line_number, context=_trap_context(api_command, message))

    def _attributes(self, command: CliCommand) -> dict[str, str]:
        attributes: dict[str, str] = {}
        for word in command.arguments:
            attributes[word.name] = word.value if word.value is not None else ""
        return attributes

    def _identity(self) -> str:
        table = self.session.state.table("/system/identity")
        if table is None or not table.items:
            return "MikroTik"
        return table.items[0].get("name", "MikroTik")

    def _is_menu(self, path: str) -> bool:
        return is_menu(self.session.state, path)

    def _is_command(self, path: str, word: str) -> bool:
        from simulator import commands

        full = f"{path}/{word}"
        return full in commands.SPECIAL_COMMANDS or full in streaming.STREAMING_HANDLERS

    def _is_singleton(self, path: str, rows: list[Mapping[str, str]]) -> bool:
        table = self.session.state.table(path)
        if table is not None:
            return table.singleton
        if schemas.schema_for(path).singleton:
            return True
        from simulator import commands

        # Computed menus such as /system/resource print one item without an id.
        if f"{path}/print" in commands.SPECIAL_COMMANDS:
            return True
        return bool(rows) and all(".id" not in row for row in rows)


def is_menu(state: DeviceState, path: str) -> bool:
    """Return whether ``path`` is a menu of the device or a prefix of one (``/ip``)."""
    from simulator import commands

    if state.has_menu(path):
        return True
    prefix = path + "/"
    known = (*state.tables, *schemas.KNOWN_EMPTY_MENUS, *commands.SPECIAL_COMMANDS)
    return any(name.startswith(prefix) for name in known)


def _trap_context(api_command: str, message: str) -> str:
    """Name the command, and the argument when the trap is about one, for script errors."""
    for lead in ("input does not match any value of ", "invalid value for argument "):
        if message.startswith(lead):
            return f"{api_command} ({message[len(lead):]})"
    return api_command


def _word_text(word: Word) -> str:
    if word.value is None:
        return word.name
    return f"{word.name}={word.value}"
