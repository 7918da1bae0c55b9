"""``tikflow smoke`` against the real stack: api and worker processes, Temporal, simulated routers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from inventory.devices import Inventory, enrol_device, load_key_ring
from storage.db import Database
from tests.support.simulator import SimulatorProcess, product_samples, start_simulator
from tests.support.stack import Stack, start_stack
from tikflow.devstack import venv_binary

ENVIRONMENTS = {"r1": "lab", "r2": "lab", "r3": "staging"}


@pytest.fixture(scope="module")
def routers() -> AsyncIterator[SimulatorProcess]:
    process = start_simulator(devices=len(ENVIRONMENTS), export=product_samples()[0])
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def stack(routers, temporal_server, tmp_path_factory) -> AsyncIterator[Stack]:
    var_dir = tmp_path_factory.mktemp("smoke")
    url = f"sqlite+aiosqlite:///{var_dir}/tikflow.db"
    running = start_stack(database_url=url, temporal_address=temporal_server.address, var_dir=var_dir)
    db = Database(url)
    inventory = Inventory(db, load_key_ring(running.settings))
    try:
        for endpoint in routers.endpoints:
            host, _, port = endpoint["api"].rpartition(":")
            await enrol_device(inventory, running.settings, name=endpoint["name"], address=host,
                               port=int(port), transport="api",
                               environment=ENVIRONMENTS[endpoint["name"]],
                               username=endpoint["service_username"],
                               password=endpoint["service_password"])
        yield running
    finally:
        await db.dispose()
        running.stop()


async def smoke(stack: Stack, *arguments: str, token: str | None = None) -> tuple[int, str, str]:
    env = os.environ | {"TIKFLOW_API_URL": stack.api_url, "TIKFLOW_TOKEN": token or stack.token}
    process = await asyncio.create_subprocess_exec(
        venv_binary("tikflow"), "smoke", *arguments, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 240)
    return process.returncode, stdout.decode(), stderr.decode()


def smoke_entries(routers: SimulatorProcess, name: str) -> list[dict[str, str]]:
    rows = routers.state(name, "/ip/firewall/address-list")
    return [row for row in rows if row.get("list") == "tikflow-smoke"]


async def test_smoke_read_only_passes(stack: Stack):
    """Health, readiness, tools and each lab router's overview pass; the staging router is skipped."""
    code, stdout, stderr = await smoke(stack, "--env", "lab")

    assert code == 0, stdout + stderr
    assert "ok    GET /healthz" in stdout
    assert "ok    GET /readyz" in stdout
    assert "ok    MCP tools/list" in stdout
    assert "ok    system.get_overview.v1 r1" in stdout
    assert "ok    system.get_overview.v1 r2" in stdout
    assert "r3" not in stdout
    assert "plan" not in stdout.replace("all ", "")
    assert "smoke: all 6 checks passed" in stdout


async def test_smoke_with_plan_adds_and_removes_entry(stack: Stack, routers: SimulatorProcess):
    """--with-plan applies an add and a remove plan on the lab routers and leaves nothing behind."""
    code, stdout, stderr = await smoke(stack, "--env", "lab", "--with-plan")

    assert code == 0, stdout + stderr
    assert "ok    plan add address-list entry" in stdout
    assert "ok    plan remove address-list entry" in stdout
    for name in ("r1", "r2", "r3"):
        assert smoke_entries(routers, name) == [], name


async def test_smoke_with_plan_rejects_other_environments(stack: Stack, routers: SimulatorProcess):
    """--with-plan outside lab exits 2 before touching anything; read-only staging passes."""
    code, stdout, stderr = await smoke(stack, "--env", "staging", "--with-plan")
    assert code == 2
    assert "only with --env lab" in stderr
    assert stdout == ""

    code, stdout, stderr = await smoke(stack, "--env", "staging")
    assert code == 0, stdout + stderr
    assert "ok    system.get_overview.v1 r3" in stdout


async def test_smoke_reports_failures_with_exit_one(stack: Stack, routers: SimulatorProcess):
    """A rejected token and an unreachable router each fail a check and exit 1."""
    code, stdout, stderr = await smoke(stack, "--env", "lab", token="not-a-valid-token")
    assert code == 1, stdout + stderr
    assert "ok    GET /healthz" in stdout
    assert "FAIL  MCP session" in stdout
    assert "Traceback" not in stderr
    assert "checks failed" in stderr

    routers.set_faults("r2", {"traps": [{"command": "/system/resource/print",
                                         "message": "failure: smoke probe rejected"}]})
    try:
        code, stdout, stderr = await smoke(stack, "--env", "lab")
    finally:
        routers.clear_faults("r2")
    assert code == 1, stdout + stderr
    assert "ok    system.get_overview.v1 r1" in stdout
    assert "FAIL  system.get_overview.v1 r2" in stdout
