"""A ``tikflow simulate`` process and a client for its loopback control endpoint."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import httpx

from tikflow.devstack import Supervisor, read_simulator_endpoints, venv_binary

REPO = Path(__file__).resolve().parents[2]
SAMPLES_DIR = REPO / "simulator" / "samples"
REAL_EXPORTS_DIR = REPO.parent / "shared" / "data" / "exports"


def product_samples() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("*.rsc"))


def real_exports() -> list[Path]:
    """The real-world exports, when the folder exists beside the repository (it does in CI)."""
    return sorted(REAL_EXPORTS_DIR.glob("*.rsc")) if REAL_EXPORTS_DIR.is_dir() else []


@dataclass
class SimulatorProcess:
    endpoints: list[dict[str, Any]]
    supervisor: Supervisor = field(repr=False)

    @property
    def control_url(self) -> str:
        return f"http://{self.endpoints[0]['control']}"

    def endpoint(self, name: str) -> dict[str, Any]:
        return next(e for e in self.endpoints if e["name"] == name)

    def state(self, name: str, path: str) -> list[dict[str, str]]:
        response = httpx.get(f"{self.control_url}/devices/{name}/state", params={"path": path},
                             timeout=10)
        response.raise_for_status()
        return response.json()

    def set_faults(self, name: str, faults: dict[str, Any]) -> None:
        response = httpx.post(f"{self.control_url}/devices/{name}/faults", json=faults, timeout=10)
        response.raise_for_status()

    def clear_faults(self, name: str) -> None:
        httpx.delete(f"{self.control_url}/devices/{name}/faults", timeout=10).raise_for_status()

    async def open_api_service(self, name: str) -> None:
        """Enable the API service for every address, as an operator does before onboarding.

        Real exports often disable ``api`` or limit it to a management network, and the
        simulator enforces that, so tests open it over SSH as the admin user.
        """
        endpoint = self.endpoint(name)
        host, _, port = endpoint["ssh"].rpartition(":")
        async with asyncssh.connect(host, port=int(port), username=endpoint["username"],
                                    password=endpoint["password"], known_hosts=None) as ssh:
            result = await ssh.run('/ip service set api disabled=no address=""', check=True)
            assert not result.stdout.strip(), result.stdout

    def reset(self, name: str) -> None:
        """Restart a device with the configuration it started with."""
        httpx.post(f"{self.control_url}/devices/{name}/restart", json={"keep_state": False},
                   timeout=30).raise_for_status()

    def stop(self) -> None:
        self.supervisor.stop()


def start_simulator(*, devices: int = 1, export: Path | None = None,
                    version: str | None = None) -> SimulatorProcess:
    args = [venv_binary("tikflow"), "simulate", "--devices", str(devices), "--json"]
    # Without an export, tests get factory defaults; the command's own default is the sample.
    args += ["--from-export", str(export)] if export is not None else ["--factory"]
    if version is not None:
        args += ["--version", version]
    supervisor = Supervisor()
    process = supervisor.start("simulator", args, stdout=subprocess.PIPE)
    try:
        endpoints = read_simulator_endpoints(process, devices, timeout=120)
    except Exception:
        supervisor.stop()
        raise
    return SimulatorProcess(endpoints=endpoints, supervisor=supervisor)
