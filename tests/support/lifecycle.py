"""A full lifecycle stack for tests: migrated database, Temporal worker, api on uvicorn, simulator.

Everything runs in the test's event loop on loopback ports chosen by the OS, except Temporal,
which is the session's dev server, and the CLI, which runs as a subprocess against the api.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet
from temporalio.client import Client
from temporalio.worker import Worker

from activities.devices import DeviceLifecycleActivities, activities_of
from api.app import create_app
from api.security import Principal
from simulator.fleet import Fleet
from storage.crypto import KeyRing
from storage.db import Database
from storage.migrate import upgrade
from tikflow.settings import Settings
from tikflow.temporal import connect_temporal, ensure_search_attributes
from workflows.device_lifecycle import WORKFLOWS

STARTUP_TIMEOUT = 30.0
WORKFLOW_TIMEOUT = 90.0
CLI_TIMEOUT = 120.0
TIKFLOW = str(Path(sys.executable).with_name("tikflow"))


@dataclass
class Stack:
    settings: Settings
    api_url: str
    token: str
    master_key: str
    fleet: Fleet
    temporal: Client
    db: Database
    http: httpx.AsyncClient

    def endpoint(self, name: str, transport: str = "api") -> tuple[str, int]:
        """Return host and port of a simulated device's transport."""
        device = self.fleet.device(name)
        return self.fleet.host, device.ports[transport]

    async def register(self, name: str, device: str = "r1", **overrides: Any) -> dict[str, Any]:
        """Register a simulated device through the API with its tikflow service account."""
        host, port = self.endpoint(device, overrides.pop("transport_name", "api"))
        body = {"name": name, "address": host, "port": port, "transport": "api",
                "environment": "lab", "username": "tikflow",
                "password": self.fleet.service_password} | overrides
        response = await self.http.post("/api/v1/devices", json=body)
        assert response.status_code == 202, response.text
        return response.json()

    async def wait(self, device_id: str, workflow_id: str) -> dict[str, Any]:
        """Wait for a lifecycle workflow and return its final status from the API."""
        await asyncio.wait_for(self.temporal.get_workflow_handle(workflow_id).result(),
                               WORKFLOW_TIMEOUT)
        response = await self.http.get(f"/api/v1/devices/{device_id}/operations/{workflow_id}")
        assert response.status_code == 200, response.text
        return response.json()

    async def cli(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        """Run ``tikflow`` as a subprocess against this stack's api."""
        env = os.environ | {"TIKFLOW_API_URL": self.api_url, "TIKFLOW_TOKEN": self.token}
        process = await asyncio.create_subprocess_exec(
            TIKFLOW, *args, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), CLI_TIMEOUT)
        return process.returncode or 0, stdout.decode(), stderr.decode()

    async def cli_json(self, *args: str) -> Any:
        code, stdout, stderr = await self.cli(*args, "--json")
        assert code == 0, stderr
        return json.loads(stdout)


class _ExtraTokens:
    """An authenticator that knows a few test tokens and defers to the real one for the rest."""

    def __init__(self, inner: Any, principals: dict[str, Principal]) -> None:
        self._inner = inner
        self._principals = principals

    async def authenticate(self, token: str) -> Principal | None:
        return self._principals.get(token) or await self._inner.authenticate(token)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task, int]:
    """Serve ``app`` with uvicorn on a free loopback port; return the server, its task and port."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on",
                                           log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())

    async def started() -> None:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)

    await asyncio.wait_for(started(), STARTUP_TIMEOUT)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


@asynccontextmanager
async def lifecycle_stack(
    database_url: str, temporal_address: str, var_dir: Path, *, devices: int = 2,
    activities: Callable[[DeviceLifecycleActivities], list] = activities_of,
    handler_class: type[DeviceLifecycleActivities] = DeviceLifecycleActivities,
    principals: dict[str, Principal] | None = None,
) -> AsyncIterator[Stack]:
    """Start the stack.

    ``activities`` lets a test inject faults into chosen activities, and ``principals`` maps
    extra bearer tokens to callers with fewer roles than the all-roles development token.
    """
    await asyncio.to_thread(upgrade, database_url)
    token = secrets.token_urlsafe(24)
    master_key = Fernet.generate_key().decode()
    settings = Settings(
        dev_token=token, master_key=master_key, var_dir=var_dir,
        database={"url": database_url},
        temporal={"address": temporal_address, "task_queue": f"lifecycle-{uuid.uuid4()}"},
        routeros={"connect_timeout": 3, "command_timeout": 10},
    )
    temporal = await connect_temporal(settings)
    await ensure_search_attributes(temporal)
    db = Database(database_url)
    handler = handler_class(db, KeyRing(master_key), settings)
    worker = Worker(temporal, task_queue=settings.temporal.task_queue, workflows=WORKFLOWS,
                    activities=activities(handler))
    async with Fleet(devices) as fleet, worker:
        app = create_app(settings)
        if principals:
            app.state.authenticator = _ExtraTokens(app.state.authenticator, principals)
        server, task, port = await serve(app)
        api_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=api_url, timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            try:
                yield Stack(settings=settings, api_url=api_url, token=token, master_key=master_key,
                            fleet=fleet, temporal=temporal, db=db, http=http)
            finally:
                server.should_exit = True
                await asyncio.wait_for(task, STARTUP_TIMEOUT)
                await db.dispose()
