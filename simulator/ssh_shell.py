"""The interactive SSH console: login dialogs, terminal probe, prompt, echo and safe mode.

The shell reads raw bytes and edits one line at a time: printable bytes are echoed,
backspace erases, Ctrl-C drops the line, Ctrl-D on an empty line ends the session, and
Enter runs the line on the :class:`~simulator.console.Console`. Ctrl-X (and F4 on RouterOS 7)
takes or releases safe mode, which changes the prompt to ``[admin@MikroTik] <SAFE> ``.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncssh

from simulator.console import Console, ConsoleOutput
from simulator.safe_mode import SafeMode

if TYPE_CHECKING:
    from simulator.ssh import LoginOptions, SshServer

LICENSE_QUESTION = b"Do you want to see the software license? [Y/n]: "
TERMINAL_PROBE = b"\x1bZ"
NEW_PASSWORD_PROMPT = b"new password> "
REPEAT_PASSWORD_PROMPT = b"repeat new password> "
HIJACK_QUESTION = b"Hijacking Safe Mode from someone - unroll/release/don't take it [u/r/d]: "
CURSOR_DOWN = "\x1b[9999B"
# Maximum bytes of one typed line; further bytes are dropped so a client cannot grow it.
MAX_LINE_BYTES = 65536
_F4 = b"\x1bOS"
_MAX_ESCAPE = 16
_LICENSE_TEXT = (
    b"\r\nMikroTik RouterOS is licensed software. The simulator shows this text in place of\r\n"
    b"the license agreement.\r\n\r\n"
)
_BANNER = (
    "\r\n\r\n"
    "  MMM      MMM       KKK                          TTTTTTTTTTT      KKK\r\n"
    "  MMMM    MMMM       KKK                          TTTTTTTTTTT      KKK\r\n"
    "  MMM MMMM MMM  III  KKK  KKK  RRRRRR     OOOOOO      TTT     III  KKK  KKK\r\n"
    "  MMM  MM  MMM  III  KKKKK     RRR  RRR  OOO  OOO     TTT     III  KKKKK\r\n"
    "  MMM      MMM  III  KKK KKK   RRRRRR    OOO  OOO     TTT     III  KKK KKK\r\n"
    "  MMM      MMM  III  KKK  KKK  RRR  RRR   OOOOOO      TTT     III  KKK  KKK\r\n"
    "\r\n"
    "  MikroTik RouterOS {version} (c) 1999-2025       https://www.mikrotik.com/\r\n\r\n"
)


@dataclass
class Shell:
    """One interactive console session on an SSH channel."""

    owner: SshServer
    process: asyncssh.SSHServerProcess
    console: Console
    options: LoginOptions
    _pending: bytearray = field(default_factory=bytearray)
    _line: bytearray = field(default_factory=bytearray)
    _escape: bytearray = field(default_factory=bytearray)
    _last_was_cr: bool = False
    _safe: SafeMode | None = None

    async def run(self) -> None:
        """Run the dialogs, then read and run lines until the session ends."""
        try:
            await self._dialogs()
            await self._command_loop()
        finally:
            # Leaving without /quit (Ctrl-D, a dropped connection) undoes safe-mode changes.
            self._undo_safe_mode()

    async def _dialogs(self) -> None:
        if not self.owner.license_answered:
            await self._license_dialog()
        if self.options.detect_terminal and not self.options.dumb:
            await self._probe_terminal()
        if self.owner.asks_new_password(self.options.user):
            await self._password_dialog()
        write_text(self.process, _BANNER.format(version=self.state.version))

    @property
    def state(self):  # noqa: ANN201 - DeviceState, imported lazily by the console
        return self.console.session.state

    # -- dialogs ------------------------------------------------------------------

    async def _license_dialog(self) -> None:
        write_bytes(self.process, LICENSE_QUESTION)
        answer = await self._read_key()
        if answer is None:
            return
        self.owner.license_answered = True
        write_bytes(self.process, answer.rstrip(b"\r\n") + b"\r\n")
        if answer.strip().lower() in (b"", b"y"):
            write_bytes(self.process, _LICENSE_TEXT)

    async def _probe_terminal(self) -> None:
        write_bytes(self.process, TERMINAL_PROBE)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._read_probe_reply(), self.owner.options.probe_timeout)

    async def _read_probe_reply(self) -> None:
        # Terminal replies look like `ESC / Z` (VT52 style) or `ESC [ ? 1 ; 2 c` (VT100 DA).
        while True:
            chunk = await self._read()
            if chunk is None:
                return
            self._pending += chunk
            start = self._pending.find(b"\x1b")
            if start < 0:
                return
            end = probe_reply_end(self._pending, start)
            if end is not None:
                del self._pending[start:end]
                return

    async def _password_dialog(self) -> None:
        """Ask for a new password, as RouterOS 7.21+ does while the password is empty.

        NOTE: the prompt texts come from third-party transcripts and are not confirmed on a
        RouterOS 7.21 CHR. An empty reply keeps the empty password.
        """
        write_bytes(self.process, b"\r\n" + NEW_PASSWORD_PROMPT)
        first = await self._read_hidden_line()
        if not first:
            write_bytes(self.process, b"\r\n")
            return
        write_bytes(self.process, b"\r\n" + REPEAT_PASSWORD_PROMPT)
        second = await self._read_hidden_line()
        if first != second:
            write_bytes(self.process, b"\r\npasswords do not match\r\n")
            return
        self.owner.change_password(self.options.user, first.decode("utf-8", "surrogateescape"))
        write_bytes(self.process, b"\r\npassword changed\r\n")

    async def _read_key(self) -> bytes | None:
        chunk = await self._read()
        if chunk is None:
            return None
        first, rest = chunk[:1], chunk[1:]
        self._pending += rest.lstrip(b"\r\n")
        return first

    async def _read_hidden_line(self) -> bytes:
        """Read a line without echo (password entry)."""
        line = bytearray()
        while True:
            chunk = await self._read()
            if chunk is None:
                return bytes(line)
            for index, byte in enumerate(chunk):
                if byte in (0x0D, 0x0A):
                    self._pending += chunk[index + 1 :].lstrip(b"\n")
                    return bytes(line)
                if byte in (0x7F, 0x08):
                    if line:
                        line.pop()
                elif byte >= 0x20 and len(line) < MAX_LINE_BYTES:
                    line.append(byte)

    # -- command loop -------------------------------------------------------------

    async def _command_loop(self) -> None:
        write_text(self.process, self._prompt())
        while True:
            chunk = await self._read()
            if chunk is None:
                return
            for byte in chunk:
                if self._escape or byte == 0x1B:
                    await self._escape_byte(byte)
                    continue
                if byte in (0x0D, 0x0A):
                    if byte == 0x0A and self._last_was_cr:
                        self._last_was_cr = False
                        continue
                    self._last_was_cr = byte == 0x0D
                    if not await self._enter():
                        return
                    continue
                self._last_was_cr = False
                if not await self._control_or_text(byte):
                    return

    async def _enter(self) -> bool:
        """Run the typed line; return False when the session ends."""
        write_bytes(self.process, b"\r\n")
        if not await self.owner.delay_reply(self.process):
            return False
        text = bytes(self._line).decode("utf-8", "surrogateescape")
        self._line.clear()
        output = self.console.run_line(text, 1)
        write_text(self.process, output.text)
        if output.question is not None:
            output = await self._confirm(output)
            write_text(self.process, output.text)
        await self.process.stdout.drain()
        run_after_reply(output)
        if output.quit:
            self._release_safe_mode(announce=False)
            return False
        write_text(self.process, self._prompt())
        return True

    async def _confirm(self, output: ConsoleOutput) -> ConsoleOutput:
        """Ask the command's y/N question; anything but ``y`` drops the command."""
        write_text(self.process, output.question or "")
        key = await self._read_key()
        write_bytes(self.process, (key or b"").rstrip(b"\r\n") + b"\r\n")
        return output.answer(key is not None and key.lower() == b"y")

    async def _control_or_text(self, byte: int) -> bool:
        """Handle one typed byte other than Enter; return False when the session ends."""
        if byte in (0x7F, 0x08):
            if self._line:
                self._line.pop()
                write_bytes(self.process, b"\x08 \x08")
        elif byte == 0x03:
            self._line.clear()
            write_text(self.process, "\r\n" + self._prompt())
        elif byte == 0x04 and not self._line:
            return False
        elif byte == 0x18:
            await self._toggle_safe_mode()
        elif (byte >= 0x20 or byte == 0x09) and len(self._line) < MAX_LINE_BYTES:
            self._line.append(byte)
            write_bytes(self.process, bytes([byte]))
        return True

    async def _escape_byte(self, byte: int) -> None:
        """Collect an escape sequence (arrows, F-keys); F4 toggles safe mode on RouterOS 7."""
        self._escape.append(byte)
        sequence = bytes(self._escape)
        if not _escape_complete(sequence):
            return
        self._escape.clear()
        if sequence == _F4 and self.state.version_at_least(7):
            await self._toggle_safe_mode()

    def _prompt(self) -> str:
        prompt = self.console.prompt
        if self._safe is not None and self._safe.active:
            prompt = prompt[: -len("> ")] + "<SAFE> "
        if self.options.dumb or not self.owner.options.cursor_sequences:
            return prompt
        # Real consoles move the cursor down before the prompt; scraping clients strip it.
        return CURSOR_DOWN + prompt

    # -- safe mode ----------------------------------------------------------------

    async def _toggle_safe_mode(self) -> None:
        if self._safe is not None and self._safe.active:
            self._release_safe_mode(announce=True)
        else:
            await self._take_safe_mode()
        write_text(self.process, self._prompt())

    async def _take_safe_mode(self) -> None:
        slot = self.owner.safe_mode
        other = slot.holder()
        if other is not None and other.owner is not self:
            write_bytes(self.process, b"\r\n" + HIJACK_QUESTION)
            answer = await self._read_key()
            write_bytes(self.process, (answer or b"").rstrip(b"\r\n") + b"\r\n")
            if answer is None or answer.lower() not in (b"u", b"r"):
                return
            if answer.lower() == b"u":
                other.undo()
            else:
                other.release()
        safe = SafeMode(self.state, owner=self)
        safe.take()
        slot.current = safe
        self._safe = safe
        if self.state.version_at_least(7, 21):
            write_bytes(self.process, b"\r\nTaking Safe Mode session... Success!\r\n")
        else:
            write_bytes(self.process, b"\r\n[Safe Mode taken]\r\n")

    def _release_safe_mode(self, *, announce: bool) -> None:
        safe = self._safe
        self._safe = None
        if safe is None or not safe.active:
            return
        safe.release()
        self._forget(safe)
        if announce:
            write_bytes(self.process, b"\r\n[Safe Mode released]\r\n")

    def _undo_safe_mode(self) -> None:
        safe = self._safe
        self._safe = None
        if safe is not None and safe.active and self.owner.safe_mode.current is safe:
            safe.undo()
            self._forget(safe)

    def _forget(self, safe: SafeMode) -> None:
        if self.owner.safe_mode.current is safe:
            self.owner.safe_mode.current = None

    async def _read(self) -> bytes | None:
        if self._pending:
            data = bytes(self._pending)
            self._pending.clear()
            return data
        try:
            data = await self.process.stdin.read(4096)
        except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
            return b""
        return data or None


def _escape_complete(sequence: bytes) -> bool:
    """Return whether ``sequence`` (starting with ESC) is a whole key sequence."""
    if len(sequence) < 2:
        return False
    kind = sequence[1:2]
    if kind == b"O":
        return len(sequence) >= 3
    if kind == b"[":
        # CSI sequences end with a byte in 0x40-0x7E; overlong ones are dropped.
        return len(sequence) >= 3 and (0x40 <= sequence[-1] <= 0x7E or len(sequence) >= _MAX_ESCAPE)
    return True


def probe_reply_end(buffer: bytearray, start: int) -> int | None:
    """Return the end of a terminal reply starting at ``start``, or ``None`` while incomplete."""
    body = buffer[start + 1 :]
    if body[:2] == b"/Z":
        return start + 3
    if body[:1] == b"[":
        for offset, byte in enumerate(body[1:], start=2):
            if 0x40 <= byte <= 0x7E:
                return start + 1 + offset
        return None
    if len(body) >= 2:
        return start + 3
    return None


def write_text(process: asyncssh.SSHServerProcess, text: str) -> None:
    """Write console text with CRLF line ends, keeping raw bytes (``surrogateescape``)."""
    data = text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape")
    write_bytes(process, data)


def write_bytes(process: asyncssh.SSHServerProcess, data: bytes) -> None:
    """Write to the channel unless it is closing; a gone client is not an error."""
    if not process.is_closing():
        with contextlib.suppress(BrokenPipeError, ConnectionError):
            process.stdout.write(data)


def run_after_reply(output: ConsoleOutput) -> None:
    """Run what a command deferred until its output was sent (a reboot)."""
    for action in output.after_reply:
        action()
