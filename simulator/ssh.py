"""The SSH console of a simulated device (asyncssh server).

Password logins are checked against the device's users and need the ``ssh`` policy. The
login name may carry RouterOS console options after ``+`` (``admin+cet512w``,
``admin+ct511w4098h``): ``w``/``h`` set the terminal size, ``c`` turns colours off, ``t``
turns terminal detection off and ``e`` selects the dumb terminal. Without ``t`` an
interactive session sends the ``ESC Z`` terminal probe and waits briefly for the reply.

Interactive shells are run by :mod:`simulator.ssh_shell` (dialogs, echo, safe mode). Exec
requests (``ssh host '/ip address print'``) run the command and close. All output is raw bytes: values
that are not UTF-8 are written as the device stores them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from dataclasses import dataclass

import asyncssh

from simulator.console import Console
from simulator.executor import Session
from simulator.faults import Faults
from simulator.safe_mode import SafeModeSlot
from simulator.ssh_shell import Shell, run_after_reply, write_text
from simulator.state import DeviceState

logger = logging.getLogger(__name__)

# Console width when neither the login name nor the terminal sets one.
DEFAULT_WIDTH = 80
_LOGIN_OPTION = re.compile(r"(\d*)([a-z])")

@dataclass(frozen=True)
class LoginOptions:
    """A login name split into the user and the console options after ``+``."""

    user: str
    width: int | None = None
    height: int | None = None
    colors: bool = True
    detect_terminal: bool = True
    dumb: bool = False


@dataclass(frozen=True)
class SshOptions:
    """Behaviour switches of the SSH console.

    Attributes:
        license_prompt: Ask the software-license question on interactive logins to the
            device until one of them answers it.
        password_prompt: Ask for a new password on shell logins of RouterOS 7.21+ while the
            user's password is empty.
        cursor_sequences: Send ``ESC [ 9999 B`` before each prompt of a shell that is not a
            dumb terminal (``+e``), as RouterOS consoles do.
        probe_timeout: Seconds to wait for the answer to the ``ESC Z`` terminal probe
            before carrying on as a dumb terminal.
        host_key_algorithm: Host key type; ``None`` picks ``ssh-ed25519`` for RouterOS 7
            and ``ssh-rsa`` (the only algorithm RouterOS 6 offers) for older versions.
    """

    license_prompt: bool = True
    password_prompt: bool = True
    cursor_sequences: bool = True
    probe_timeout: float = 2.0
    host_key_algorithm: str | None = None


def parse_login_name(login: str) -> LoginOptions:
    """Split ``admin+ct511w4098h`` into the user and its console options.

    Unknown option letters are ignored, as RouterOS does.
    """
    user, plus, suffix = login.partition("+")
    if not plus:
        return LoginOptions(user=login)
    options: dict[str, object] = {}
    for number, letter in _LOGIN_OPTION.findall(suffix):
        if letter == "w" and number:
            options["width"] = int(number)
        elif letter == "h" and number:
            options["height"] = int(number)
        elif letter == "c":
            options["colors"] = False
        elif letter == "t":
            options["detect_terminal"] = False
        elif letter == "e":
            options["dumb"] = True
    return LoginOptions(user=user, **options)  # type: ignore[arg-type]


@functools.cache
def host_key(algorithm: str) -> asyncssh.SSHKey:
    """Return a host key of ``algorithm``, generated once per process and shared."""
    if algorithm == "ssh-rsa":
        return asyncssh.generate_private_key("ssh-rsa", 2048)
    return asyncssh.generate_private_key(algorithm)


class SshServer:
    """Serve the console of one device over SSH on one port."""

    def __init__(
        self,
        state: DeviceState,
        *,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        options: SshOptions | None = None,
    ) -> None:
        self._state = state
        self._faults = faults if faults is not None else Faults()
        self._host = host
        self._port = port
        self.options = options or SshOptions()
        self._server: asyncssh.SSHAcceptor | None = None
        self.license_answered = not self.options.license_prompt
        self.safe_mode = SafeModeSlot()
        self.connections: set[asyncssh.SSHServerConnection] = set()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._server is None:
            raise RuntimeError("SSH server not started")
        return self._server.get_port()

    @property
    def host_key_algorithm(self) -> str:
        """The host key type this device offers."""
        if self.options.host_key_algorithm:
            return self.options.host_key_algorithm
        return "ssh-ed25519" if self._state.version_at_least(7) else "ssh-rsa"

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncssh.create_server(
            self._new_connection,
            self._host,
            self._port,
            server_host_keys=[self._host_keypair()],
            server_version="ROSSSH",
            line_editor=False,
            allow_pty=True,
            login_timeout=30,
            process_factory=self._run_process,
            encoding=None,
        )
        self._state.add_reboot_listener(self.drop_connections)

    async def stop(self) -> None:
        """Stop listening and close open sessions."""
        if self._server is None:
            return
        self._state.remove_reboot_listener(self.drop_connections)
        self._server.close()
        self.drop_connections()
        await self._server.wait_closed()
        self._server = None

    def drop_connections(self) -> None:
        """Close every open session, as a reboot does."""
        for connection in list(self.connections):
            connection.close()

    def _host_keypair(self) -> asyncssh.SSHKeyPair:
        keypair = asyncssh.load_keypairs([host_key(self.host_key_algorithm)])[0]
        if self.host_key_algorithm == "ssh-rsa" and not self._state.version_at_least(7):
            # RouterOS 6 signs only with SHA-1 `ssh-rsa`, so clients must enable it explicitly.
            keypair.host_key_algorithms = (b"ssh-rsa",)
        return keypair

    def check_password(self, login: str, password: str) -> bool:
        """Return whether ``login`` (suffix allowed) may log in with ``password`` over SSH.

        The user needs the ``ssh`` policy, and the refuse-logins fault rejects everyone.
        """
        if self._faults.refuse_logins:
            return False
        options = parse_login_name(login)
        try:
            user = self._state.authenticate(options.user, password)
        except UnicodeEncodeError:
            return False
        return user is not None and "ssh" in user.policies

    def asks_new_password(self, user: str) -> bool:
        """Return whether a shell login asks ``user`` for a new password first.

        RouterOS 7.21 and later ask on every interactive login while the password is empty.
        """
        return (
            self.options.password_prompt
            and self._state.version_at_least(7, 21)
            and self._state.passwords.get(user, "") == ""
        )

    def change_password(self, user: str, password: str) -> None:
        """Store a new password for ``user``, as the password dialog does."""
        self._state.passwords[user] = password

    async def delay_reply(self, process: asyncssh.SSHServerProcess) -> bool:
        """Delay a command by the device's latency fault; return False if it must not run.

        While the hang fault is on, a command never runs: the session stays open without
        output until the client gives up and closes it.
        """
        if self._faults.hang:
            await process.wait_closed()
            return False
        delay = self._faults.reply_delay()
        if delay > 0:
            await asyncio.sleep(delay)
        return True

    def _new_connection(self) -> asyncssh.SSHServer:
        return _DeviceSshServer(self)

    def _session(self, login: str) -> Session | None:
        options = parse_login_name(login)
        user = self._state.user_info(options.user)
        if not user.group:
            return None
        return Session(state=self._state, user=user, transport="ssh", faults=self._faults)

    async def _run_process(self, process: asyncssh.SSHServerProcess) -> None:
        login = process.get_extra_info("username") or ""
        session = self._session(login)
        if session is None:
            process.exit(1)
            return
        options = parse_login_name(login)
        console = Console(session, width=_console_width(process, options))
        try:
            if process.command is not None:
                await self._run_exec(process, console)
            else:
                await Shell(self, process, console, options).run()
        except (asyncssh.Error, ConnectionError, BrokenPipeError):
            pass
        except Exception:
            logger.exception("SSH session failed for user %s", options.user)
        finally:
            if not process.is_closing():
                process.exit(0)

    async def _run_exec(self, process: asyncssh.SSHServerProcess, console: Console) -> None:
        command = process.command or ""
        for number, line in enumerate(command.replace("\r\n", "\n").split("\n"), start=1):
            if not await self.delay_reply(process):
                return
            output = console.run_line(line, number)
            write_text(process, output.text)
            if output.question is not None:
                # The question is answered from the request's stdin and end of input means no.
                # Like the console, this waits until the client sends a key or closes stdin.
                write_text(process, output.question)
                key = await process.stdin.read(1)
                write_text(process, "\n")
                output = output.answer(key.lower() == b"y")
                write_text(process, output.text)
            await process.stdout.drain()
            run_after_reply(output)
            if output.quit:
                break


class _DeviceSshServer(asyncssh.SSHServer):
    """Per-connection authentication against the device's users."""

    def __init__(self, owner: SshServer) -> None:
        self._owner = owner
        self._connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        self._owner.connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._owner.connections.discard(self._connection)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return self._owner.check_password(username, password)


def _console_width(process: asyncssh.SSHServerProcess, options: LoginOptions) -> int:
    """Return the width print layouts wrap and cut at.

    Exec requests ignore the ``w`` login option and use 80 columns, as RouterOS does, so a
    wide table loses its last columns there. Shells take the option, then the pty width.
    """
    if process.command is not None:
        return DEFAULT_WIDTH
    if options.width:
        return options.width
    width = process.get_terminal_size()[0]
    return width if width > 0 else DEFAULT_WIDTH
