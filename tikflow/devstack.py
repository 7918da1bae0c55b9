"""Start and stop the local processes of a development stack; shared by ``tikflow dev`` and tests."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tikflow.temporal import dev_server_search_attribute_flags


def venv_binary(name: str) -> str:
    """Return the path of a console script installed next to this interpreter."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} is not installed; run `make dev` or `pip install -e .[test]` first"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, *, timeout: float, process: subprocess.Popen | None = None,
                  host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with code {process.returncode} during start-up")
        if port_in_use(port, host):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


def ensure_secret_file(path: Path, *, nbytes: int = 32) -> str:
    """Return the secret stored at ``path``, creating it with mode 0600 on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(nbytes))
    os.chmod(path, 0o600)
    return path.read_text().strip()


@dataclass
class Supervisor:
    """Child processes started in order and stopped in reverse order."""

    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, args: list[str], *, env: dict[str, str] | None = None,
              log_file: Path | None = None, stdout: Any = None) -> subprocess.Popen:
        output: Any = stdout
        if output is None and log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            output = log_file.open("ab")
        process = subprocess.Popen(args, env=env, stdout=output,
                                   stderr=subprocess.STDOUT if output is not None else None,
                                   start_new_session=True)
        self.processes.append((name, process))
        return process

    def failed(self) -> list[str]:
        return [f"{name} exited with code {p.returncode}" for name, p in self.processes
                if p.poll() is not None]

    def stop(self, timeout: float = 10) -> None:
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _name, process in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()


def temporal_dev_server_args(*, port: int, ui_port: int, db_file: Path | None) -> list[str]:
    args = [venv_binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1",
            "--port", str(port), "--ui-port", str(ui_port), "--log-level", "error",
            *dev_server_search_attribute_flags()]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    return args


def read_simulator_endpoints(process: subprocess.Popen, count: int, timeout: float) -> list[dict]:
    """Read the ``--json`` lines a ``tikflow simulate`` process prints, one per device."""
    deadline = time.monotonic() + timeout
    devices: list[dict] = []
    assert process.stdout is not None
    while len(devices) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"simulator printed {len(devices)} of {count} devices in {timeout:.0f} s")
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator exited with code {process.wait()} before listing its devices")
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "name" in record:
            devices.append(record)
    return devices
