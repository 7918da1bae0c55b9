"""``tikflow devices`` as a subprocess against a running api: every operation and its exit code."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncssh
import pytest
from sqlalchemy import update

from storage.models import EnrolmentToken
from tests.support.lifecycle import Stack, lifecycle_stack

SSH_TIMEOUT = 30.0


@pytest.fixture
async def stack(database_url: str, temporal_server, tmp_path) -> AsyncIterator[Stack]:
    async with lifecycle_stack(database_url, temporal_server.address, tmp_path) as running:
        yield running


def password_file(tmp_path, secret: str) -> str:
    path = tmp_path / "router-password"
    path.write_text(secret + "\n")
    return str(path)


async def cli_register(stack: Stack, tmp_path, name: str, device: str = "r1", *extra: str,
                       secret: str | None = None) -> tuple[int, str, str]:
    host, port = stack.endpoint(device)
    return await stack.cli(
        "devices", "register", name, "--address", f"{host}:{port}", "--transport", "api",
        "--env", "lab", "--username", "tikflow",
        "--password-file", password_file(tmp_path, secret or stack.fleet.service_password), *extra)


async def test_cli_runs_every_lifecycle_operation(stack: Stack, tmp_path) -> None:
    """register, list, show, update, rotate-credentials and decommission all exit 0."""
    code, stdout, stderr = await cli_register(stack, tmp_path, "edge-1", "r1", "--tag", "edge", "--json")
    assert code == 0, stderr
    registered = json.loads(stdout)
    device_id = registered["device_id"]
    assert registered["result"]["status"] == "active"

    listed = await stack.cli_json("devices", "list", "--env", "lab")
    assert [d["name"] for d in listed] == ["edge-1"]
    code, table, _ = await stack.cli("devices", "list")
    assert code == 0
    assert "edge-1" in table
    assert "active" in table

    shown = await stack.cli_json("devices", "show", "edge-1")
    assert shown["id"] == device_id
    assert shown["operations"][0]["workflow_id"] == f"device-register:{device_id}"
    code, details, _ = await stack.cli("devices", "show", "edge-1")
    assert code == 0
    assert "tikflow generation 1 (active)" in details

    updated = await stack.cli_json("devices", "update", "edge-1", "--tag", "core", "--env", "staging",
                                   "--capability", "bgp=true")
    assert (updated["tags"], updated["environment"]) == (["core"], "staging")
    assert updated["capabilities"] == {"bgp": True}

    rotated = await stack.cli_json("devices", "rotate-credentials", "edge-1", "--policy", "new-user")
    assert rotated["result"]["status"] == "rotated"

    code, stdout, stderr = await stack.cli("devices", "decommission", device_id, "--remove-account")
    assert code == 0, stderr
    assert "inactive" in stdout
    assert (await stack.cli_json("devices", "show", device_id))["status"] == "inactive"


async def test_cli_no_wait_returns_workflow_id(stack: Stack, tmp_path) -> None:
    """--no-wait prints the started workflow and exits 0 before it finishes."""
    code, stdout, stderr = await cli_register(stack, tmp_path, "nw-1", "r1", "--no-wait", "--json")

    assert code == 0, stderr
    started = json.loads(stdout)
    assert started["workflow_id"] == f"device-register:{started['device_id']}"
    assert "result" not in started
    await stack.wait(started["device_id"], started["workflow_id"])


async def test_cli_exit_codes_for_bad_input(stack: Stack, tmp_path) -> None:
    """Bad input exits 2, an unknown device 3, a failed workflow 1, and nothing is stored."""
    host, port = stack.endpoint("r1")
    secret_file = password_file(tmp_path, "pw")

    bad_env = await stack.cli("devices", "register", "x", "--address", f"{host}:{port}",
                              "--transport", "api", "--env", "dev", "--username", "u",
                              "--password-file", secret_file)
    no_password = await stack.cli("devices", "register", "x", "--address", host, "--transport", "api",
                                  "--env", "lab", "--username", "u")
    bad_port = await stack.cli("devices", "register", "x", "--address", f"{host}:99999",
                               "--transport", "api", "--env", "lab", "--username", "u",
                               "--password-file", secret_file)
    unknown = await stack.cli("devices", "show", "no-such-router")
    unknown_rotate = await stack.cli("devices", "rotate-credentials", "no-such-router")

    assert bad_env[0] == 2
    assert "environment" in bad_env[2]
    assert no_password[0] == 2
    assert "--password-file or --password-ref" in no_password[2]
    assert bad_port[0] == 2
    assert "expected 1 to 65535" in bad_port[2]
    assert unknown[0] == 3
    assert "no device with id or name 'no-such-router'" in unknown[2]
    assert unknown_rotate[0] == 3
    assert await stack.cli_json("devices", "list") == []


async def test_cli_duplicate_address_exits_2(stack: Stack, tmp_path) -> None:
    """Registering the same address and port twice exits 2 and names the existing device."""
    assert (await cli_register(stack, tmp_path, "first", "r1"))[0] == 0

    code, _, stderr = await cli_register(stack, tmp_path, "second", "r1")

    assert code == 2
    assert "already registered as 'first'" in stderr
    assert [d["name"] for d in await stack.cli_json("devices", "list")] == ["first"]


async def test_cli_unreachable_device_exits_1_with_reason(stack: Stack, tmp_path) -> None:
    """A device that does not respond ends pending; the CLI exits 1 and names what to check."""
    await stack.fleet.device("r2").stop()

    code, stdout, stderr = await cli_register(stack, tmp_path, "down-1", "r2")

    assert code == 1
    assert "pending" in stdout
    assert "unreachable" in stdout
    assert (await stack.cli_json("devices", "show", "down-1"))["status"] == "pending"


async def test_cli_wrong_api_token_exits_1(stack: Stack) -> None:
    """A rejected token is a failure (exit 1) that names TIKFLOW_TOKEN as the thing to fix."""
    stack.token = "wrong-token"

    code, _, stderr = await stack.cli("devices", "list")

    assert code == 1
    assert "rejected the token" in stderr
    assert "TIKFLOW_TOKEN" in stderr


# -- bootstrap enrolment ------------------------------------------------------------------


def script_lines(script: str) -> tuple[list[str], str]:
    """Split the script into its /user commands and the JSON body of its /tool fetch call."""
    users = [line for line in script.splitlines() if line.startswith("/user")]
    fetch = next(line for line in script.splitlines() if line.startswith("/tool fetch"))
    escaped = re.search(r'http-data="((?:[^"\\]|\\.)*)"', fetch).group(1)
    body = re.sub(r"\\(.)", r"\1", escaped)
    return users, body


async def run_over_ssh(stack: Stack, device: str, lines: list[str]) -> None:
    host, port = stack.endpoint(device, "ssh")
    async with asyncssh.connect(host, port=port, username="admin",
                                password=stack.fleet.admin_password, known_hosts=None) as conn:
        for line in lines:
            result = await asyncio.wait_for(conn.run(line), SSH_TIMEOUT)
            assert "failure" not in str(result.stdout), (line, result.stdout)


async def bootstrap(stack: Stack, name: str, device: str, *extra: str) -> str:
    host, port = stack.endpoint(device)
    code, script, stderr = await stack.cli("devices", "bootstrap-script", "--name", name, "--env", "lab",
                                           "--address", f"{host}:{port}", *extra)
    assert code == 0, stderr
    return script


async def test_bootstrap_script_creates_account_and_enrols(stack: Stack) -> None:
    """The script's /user lines run on the router's CLI; its enrol call registers the device."""
    script = await bootstrap(stack, "boot-1", "r2", "--tag", "branch")
    users, body = script_lines(script)
    assert "policy=read,write,policy,test,api " in users[0]
    assert f"{stack.api_url}/api/v1/enrol" in script

    await run_over_ssh(stack, "r2", users)
    response = await stack.http.post("/api/v1/enrol", json=json.loads(body),
                                     headers={"Authorization": ""})
    replay = await stack.http.post("/api/v1/enrol", json=json.loads(body),
                                   headers={"Authorization": ""})

    assert response.status_code == 202, response.text
    started = response.json()
    result = await stack.wait(started["device_id"], started["workflow_id"])
    assert result["status"] == "active"
    device = (await stack.http.get("/api/v1/devices/boot-1")).json()
    assert device["tags"] == ["branch"]
    assert device["credentials"][0]["username"] == "tikflow-svc"
    group = stack.fleet.device("r2").state.table("/user").find("tikflow-svc")["group"]
    assert group == "tikflow-svc"
    assert replay.status_code == 401
    assert "already used or expired" in replay.json()["detail"]


async def test_enrol_rejects_expired_and_unknown_tokens(stack: Stack) -> None:
    """An expired or made-up token gets 401 and registers nothing."""
    script = await bootstrap(stack, "late-1", "r1")
    _, body = script_lines(script)
    async with stack.db.session() as session:
        await session.execute(update(EnrolmentToken).values(
            expires_at=datetime.now(UTC) - timedelta(seconds=1)))

    expired = await stack.http.post("/api/v1/enrol", json=json.loads(body))
    made_up = await stack.http.post("/api/v1/enrol", json=json.loads(body) | {"token": "guess"})

    assert expired.status_code == 401
    assert made_up.status_code == 401
    assert (await stack.http.get("/api/v1/devices")).json()["items"] == []
    async with stack.db.session() as session:
        stored = (await session.scalars(select_tokens())).all()
    assert all(len(token.token_sha256) == 64 for token in stored)
    assert json.loads(body)["token"] not in {token.token_sha256 for token in stored}


def select_tokens():
    from sqlalchemy import select

    return select(EnrolmentToken)


async def test_cli_retry_registration_with_new_password(stack: Stack, tmp_path) -> None:
    """A device left pending by a wrong password registers after a retry with the right one."""
    code, _, _ = await cli_register(stack, tmp_path, "retry-1", "r1", secret="wrong-password")
    assert code == 1

    code, stdout, stderr = await stack.cli(
        "devices", "retry-registration", "retry-1",
        "--password-file", password_file(tmp_path, stack.fleet.service_password), "--json")
    active_again = await stack.cli("devices", "retry-registration", "retry-1")

    assert code == 0, stderr
    assert json.loads(stdout)["result"]["status"] == "active"
    shown = await stack.cli_json("devices", "show", "retry-1")
    assert [(c["generation"], c["state"]) for c in shown["credentials"]] == [(1, "failed"), (2, "active")]
    assert active_again[0] == 2
    assert "only pending devices register again" in active_again[2]
