"""``tikflow smoke``: sanity checks of a running deployment through its public surfaces.

Read-only by default: ``/healthz``, ``/readyz``, the MCP tool list, ``device.list.v1`` and
``system.get_overview.v1`` on each active device of the chosen environment, all through the
official MCP client with ``TIKFLOW_API_URL`` and ``TIKFLOW_TOKEN`` as ``tikflow devices`` uses
them. ``--with-plan`` also creates and applies a harmless plan on lab devices only: it adds an
entry to the address list ``tikflow-smoke`` and then removes it again.

Exit codes: 0 every check passed, 1 a check failed, 2 invalid use (``--with-plan`` outside lab).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx2
import typer
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tikflow.commands.devices import api_token, api_url

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
ENVIRONMENTS = ("lab", "staging", "prod")
REQUIRED_TOOLS = ("device.list.v1", "system.get_overview.v1", "plan.create.v1", "plan.apply.v1",
                  "plan.status.v1")
SMOKE_LIST = "tikflow-smoke"
# A documentation address (RFC 5737 TEST-NET-1), so the entry can match no real traffic.
SMOKE_ADDRESS = "192.0.2.254"
PLAN_END_STATES = {"applied", "rolled_back", "failed", "needs_operator", "aborted"}
HTTP_TIMEOUT_SECONDS = 30.0


class SmokeFailed(Exception):
    """One smoke check failed; the message names the expected and the actual outcome."""


@dataclass
class SmokeReport:
    """Checks run so far, each with its outcome and duration."""

    results: list[tuple[str, bool, str, float]] = field(default_factory=list)

    async def check(self, name: str, step: Callable[[], Awaitable[str]]) -> bool:
        """Run one check, print its line, and record whether it passed."""
        started = time.monotonic()
        try:
            detail, passed = await step(), True
        except SmokeFailed as exc:
            detail, passed = str(exc), False
        except (httpx2.HTTPError, OSError, TimeoutError) as exc:
            detail, passed = f"{type(exc).__name__}: {exc}", False
        elapsed = time.monotonic() - started
        self.results.append((name, passed, detail, elapsed))
        typer.echo(f"{'ok  ' if passed else 'FAIL'}  {name:<42} {elapsed * 1000:7.0f} ms  {detail}")
        return passed

    @property
    def failed(self) -> int:
        return sum(1 for _, passed, _, _ in self.results if not passed)


class McpTools:
    """Tool calls over an open MCP session that fail with the tool's own error text."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.client.call_tool(tool, arguments)
        if result.is_error:
            text = " ".join(getattr(part, "text", "") for part in result.content)
            raise SmokeFailed(f"{tool} returned an error: {text}")
        return result.structured_content or {}


async def check_health(http: httpx2.AsyncClient) -> str:
    response = await http.get("/healthz")
    if response.status_code != 200:
        raise SmokeFailed(f"/healthz returned HTTP {response.status_code}")
    return "live"


async def check_ready(http: httpx2.AsyncClient) -> str:
    response = await http.get("/readyz")
    body = _json(response)
    if response.status_code != 200 or not body.get("ready", False):
        failing = {k: v for k, v in body.items() if isinstance(v, dict) and v.get("ok") is False}
        raise SmokeFailed(f"/readyz returned HTTP {response.status_code}, not ready: {failing or body}")
    return "ready"


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def run_smoke(environment: str, *, with_plan: bool, base_url: str, token: str,
                    plan_timeout: float) -> SmokeReport:
    """Run every check against the deployment at ``base_url`` and return the report."""
    report = SmokeReport()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(base_url=base_url, headers=headers, timeout=HTTP_TIMEOUT_SECONDS) as http:
        await report.check("GET /healthz", lambda: check_health(http))
        await report.check("GET /readyz", lambda: check_ready(http))
        transport = streamable_http_client(f"{base_url}/mcp", http_client=http)
        try:
            async with Client(transport) as client:
                await _mcp_checks(report, McpTools(client), environment, with_plan, plan_timeout)
        except* Exception as group:
            # Any failure to open or keep the session (401, a closed port, a protocol error) is
            # one failed check, so the report still prints and the exit code stays 1.
            cause = group.exceptions[0]
            report.results.append(("MCP session", False, f"{type(cause).__name__}: {cause}", 0.0))
            typer.echo(f"FAIL  {'MCP session':<42} {0:7.0f} ms  cannot open an MCP session at "
                       f"{base_url}/mcp: {type(cause).__name__}")
    return report


async def _mcp_checks(report: SmokeReport, tools: McpTools, environment: str, with_plan: bool,
                      plan_timeout: float) -> None:
    async def list_tools() -> str:
        names = {tool.name for tool in (await tools.client.list_tools()).tools}
        missing = [name for name in REQUIRED_TOOLS if name not in names]
        if missing:
            raise SmokeFailed(f"tools/list lacks {', '.join(missing)}")
        return f"{len(names)} tools"

    await report.check("MCP tools/list", list_tools)
    devices: list[dict[str, Any]] = []

    async def list_devices() -> str:
        listed = await tools.call("device.list.v1", {"environment": environment, "status": "active"})
        devices.extend(listed.get("items", []))
        if not devices:
            raise SmokeFailed(f"no active {environment} device is registered")
        return ", ".join(d["name"] for d in devices)

    if not await report.check(f"device.list.v1 {environment}", list_devices):
        return
    for device in devices:
        await report.check(f"system.get_overview.v1 {device['name']}",
                           lambda name=device["name"]: overview(tools, name))
    if with_plan:
        await smoke_plan(report, tools, devices, plan_timeout)


async def overview(tools: McpTools, name: str) -> str:
    result = await tools.call("system.get_overview.v1", {"device": name})
    version = result.get("resource", {}).get("version")
    if not version:
        raise SmokeFailed(f"{name}: the overview has no RouterOS version: {result}")
    return f"{result.get('identity')} RouterOS {version}"


async def smoke_plan(report: SmokeReport, tools: McpTools, devices: list[dict[str, Any]],
                     plan_timeout: float) -> None:
    """Add an address-list entry to every device through a plan, then remove it with another."""
    async def only_lab() -> str:
        not_lab = [d["name"] for d in devices if d.get("environment") != "lab"]
        if not_lab:
            raise SmokeFailed(f"rejected: the smoke plan changes lab devices only, not {', '.join(not_lab)}")
        return "every target device is in lab"

    if not await report.check("plan targets lab devices only", only_lab):
        return
    names = [d["name"] for d in devices]
    marker = f"tikflow smoke {secrets.token_hex(4)}"
    entry = {"list": SMOKE_LIST, "address": SMOKE_ADDRESS, "comment": marker}
    add = {"path": "/ip/firewall/address-list", "action": "add", "values": entry}
    added = await report.check("plan add address-list entry",
                               lambda: run_plan(tools, names, add, "tikflow smoke: add", plan_timeout))
    if not added:
        return
    remove = {"path": "/ip/firewall/address-list", "action": "remove",
              "where": {"list": SMOKE_LIST, "comment": marker}}
    removed = await report.check("plan remove address-list entry",
                                 lambda: run_plan(tools, names, remove, "tikflow smoke: remove",
                                                          plan_timeout))
    if not removed:
        typer.echo(f"warning: the entry {SMOKE_ADDRESS} in address list {SMOKE_LIST} with comment "
                   f"{marker!r} may remain on {', '.join(names)}; remove it by hand", err=True)


async def run_plan(tools: McpTools, devices: list[str], change: dict[str, Any], description: str,
                   plan_timeout: float) -> str:
    """Create, apply and wait for a plan that makes ``change`` on every device."""
    created = await tools.call("plan.create.v1", {"description": description, "changes": [change],
                                                  "devices": devices})
    touched = sum(len(d.get("entries", [])) for d in created.get("diff", []))
    if touched != len(devices):
        raise SmokeFailed(f"plan {created.get('plan_id')} touches {touched} items, expected one per "
                          f"device ({len(devices)}); its diff: {created.get('diff')}")
    await tools.call("plan.apply.v1", {"plan_id": created["plan_id"], "plan_hash": created["plan_hash"]})
    status = await wait_for_plan(tools, created["plan_id"], plan_timeout)
    if status["status"] != "applied":
        raise SmokeFailed(f"plan {created['plan_id']} ended {status['status']}: {status.get('detail')}")
    return f"plan {created['plan_id']} applied on {len(devices)} devices"


async def wait_for_plan(tools: McpTools, plan_id: str, plan_timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + plan_timeout
    while True:
        status = await tools.call("plan.status.v1", {"plan_id": plan_id})
        if status["status"] in PLAN_END_STATES:
            return status
        if status["status"] == "awaiting_approval":
            raise SmokeFailed(f"plan {plan_id} waits for approval; the lab policy should be auto")
        if time.monotonic() > deadline:
            raise SmokeFailed(f"plan {plan_id} still {status['status']} after {plan_timeout:g} s")
        await asyncio.sleep(0.5)


def smoke(
    environment: Annotated[str, typer.Option(
        "--env", help="Environment whose devices are checked: lab, staging or prod")] = "lab",
    with_plan: Annotated[bool, typer.Option(
        "--with-plan", help="Also apply and undo a harmless plan (lab devices only)")] = False,
    plan_timeout: Annotated[float, typer.Option(
        min=1, help="Seconds each smoke plan may take to apply")] = 120.0,
) -> None:
    """Check a running deployment: health, readiness, MCP tools and each device's overview."""
    if environment not in ENVIRONMENTS:
        typer.echo(f"error: unknown environment {environment!r}; use lab, staging or prod", err=True)
        raise typer.Exit(EXIT_INVALID)
    if with_plan and environment != "lab":
        typer.echo(f"error: --with-plan changes devices and runs only with --env lab, not {environment}",
                   err=True)
        raise typer.Exit(EXIT_INVALID)
    report = asyncio.run(run_smoke(environment, with_plan=with_plan, base_url=api_url(),
                                   token=api_token(), plan_timeout=plan_timeout))
    total = len(report.results)
    if report.failed:
        typer.echo(f"smoke: {report.failed} of {total} checks failed", err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"smoke: all {total} checks passed")


def register(app: typer.Typer) -> None:
    app.command("smoke")(smoke)
