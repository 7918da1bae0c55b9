"""The tikflow processes of an end-to-end test: migrated database, worker and api."""

from __future__ import annotations

import os
import secrets
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from inventory.devices import load_key_ring
from storage.migrate import upgrade
from tikflow.devstack import Supervisor, free_port, venv_binary, wait_for_port
from tikflow.settings import Settings


class ToolFailed(AssertionError):
    """A tool call returned an error result; the message is the tool's text."""


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    api_url: str
    token: str
    log_dir: Path
    supervisor: Supervisor = field(repr=False)
    approver_token: str | None = field(default=None, repr=False)
    # Every api process's base URL; api_url is the first.
    api_urls: list[str] = field(default_factory=list)

    @asynccontextmanager
    async def mcp(self, token: str | None = None, api_url: str | None = None) -> AsyncIterator[McpSession]:
        """Open an MCP session to ``api_url`` (default: the first api process)."""
        headers = {"Authorization": f"Bearer {token or self.token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            transport = streamable_http_client(f"{api_url or self.api_url}/mcp", http_client=http)
            async with Client(transport) as client:
                yield McpSession(client)

    def kill_worker(self, name: str = "worker0") -> None:
        """SIGKILL a worker process, as a crash or an OOM kill would."""
        for process_name, process in self.supervisor.processes:
            if process_name == name and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                return
        raise AssertionError(f"no running worker called {name}")

    def start_worker(self, name: str) -> None:
        self.supervisor.start(name, [venv_binary("tikflow"), "worker"], env=self.env,
                              log_file=self.log_dir / f"{name}.log")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def stop(self) -> None:
        self.supervisor.stop()


@dataclass
class McpSession:
    client: Client

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Call a tool and return its structured result; raise ToolFailed on a tool error."""
        result = await self.client.call_tool(tool, arguments)
        if result.is_error:
            raise ToolFailed(" ".join(getattr(c, "text", "") for c in result.content))
        return result.structured_content

    async def error(self, tool: str, arguments: dict[str, Any]) -> str:
        """Call a tool that must fail and return its error text."""
        result = await self.client.call_tool(tool, arguments)
        assert result.is_error, f"{tool} succeeded but was expected to fail: {result.structured_content}"
        return " ".join(getattr(c, "text", "") for c in result.content)


def stack_settings(*, database_url: str, temporal_address: str, var_dir: Path,
                   api_port: int, task_queue: str, token: str) -> tuple[Settings, dict[str, str]]:
    env = {
        "TIKFLOW_ENV": "lab",
        "TIKFLOW_VAR_DIR": str(var_dir),
        "TIKFLOW_DEV_TOKEN": token,
        "TIKFLOW_DATABASE__URL": database_url,
        "TIKFLOW_TEMPORAL__ADDRESS": temporal_address,
        "TIKFLOW_TEMPORAL__TASK_QUEUE": task_queue,
        "TIKFLOW_API__PORT": str(api_port),
        "TIKFLOW_ROUTEROS__RETRIES": "3",
        "TIKFLOW_ROUTEROS__COMMAND_TIMEOUT": "10",
        "TIKFLOW_LOGGING__FORMAT": "json",
    }
    settings = Settings(
        env="lab", var_dir=var_dir, dev_token=token, database={"url": database_url},
        temporal={"address": temporal_address, "task_queue": task_queue},
        api={"port": api_port}, routeros={"retries": 3, "command_timeout": 10},
    )
    return settings, env


def start_stack(*, database_url: str, temporal_address: str, var_dir: Path,
                workers: int = 1, apis: int = 1, extra_env: dict[str, str] | None = None) -> Stack:
    """Migrate the database, then start ``workers`` worker processes and ``apis`` api processes.

    ``extra_env`` adds or overrides ``TIKFLOW_*`` variables of every process.
    """
    upgrade(database_url)
    token = secrets.token_urlsafe(24)
    api_port = free_port()
    settings, env_vars = stack_settings(
        database_url=database_url, temporal_address=temporal_address, var_dir=var_dir,
        api_port=api_port, task_queue=f"tikflow-test-{uuid.uuid4().hex[:8]}", token=token)
    env = dict(os.environ) | env_vars | (extra_env or {})
    load_key_ring(settings)  # create the lab key once, before two processes race to do it
    log_dir = var_dir / "log"
    supervisor = Supervisor()
    tikflow = venv_binary("tikflow")
    try:
        for index in range(workers):
            supervisor.start(f"worker{index}", [tikflow, "worker"], env=env,
                             log_file=log_dir / f"worker{index}.log")
        api_ports = [api_port] + [free_port() for _ in range(apis - 1)]
        for index, port in enumerate(api_ports):
            # The first api keeps the name "api" and the log file api.log that tests read.
            name = "api" if index == 0 else f"api{index}"
            api = supervisor.start(name, [tikflow, "api"], env=env | {"TIKFLOW_API__PORT": str(port)},
                                   log_file=log_dir / f"{name}.log")
            wait_for_port(port, timeout=60, process=api)
    except Exception:
        supervisor.stop()
        raise
    api_urls = [f"http://127.0.0.1:{port}" for port in api_ports]
    return Stack(settings=settings, env=env, api_url=api_urls[0], token=token,
                 log_dir=log_dir, supervisor=supervisor, api_urls=api_urls)


@asynccontextmanager
async def stack_with_router(router: Any, name: str, *, temporal_address: str,
                            var_dir: Path) -> AsyncIterator[Stack]:
    """Start a SQLite stack and register the simulator's first router under ``name``."""
    from inventory.devices import Inventory, enrol_device
    from storage.db import Database

    url = f"sqlite+aiosqlite:///{var_dir}/tikflow.db"
    running = start_stack(database_url=url, temporal_address=temporal_address, var_dir=var_dir)
    db = Database(url)
    endpoint = router.endpoints[0]
    host, _, port = endpoint["api"].rpartition(":")
    try:
        await enrol_device(Inventory(db, load_key_ring(running.settings)), running.settings,
                           name=name, address=host, port=int(port), transport="api",
                           environment="lab", username=endpoint["service_username"],
                           password=endpoint["service_password"])
        yield running
    finally:
        await db.dispose()
        running.stop()
