"""``tikflow devices``: register, list, show, update, rotate credentials and decommission devices.

Every command talks to the admin API at ``TIKFLOW_API_URL`` with the bearer token in
``TIKFLOW_TOKEN``. In the lab profile both default to the ``make dev`` stack:
``http://127.0.0.1:8080`` and the token in ``var/dev-token``.

Exit codes: 0 success, 1 failure (the API or the workflow failed, or the API is unreachable),
2 bad input (rejected arguments, a taken name or address), 3 not found.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(name="devices", help="Register and manage RouterOS devices.", no_args_is_help=True)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_FOUND = 0, 1, 2, 3
DEFAULT_API_URL = "http://127.0.0.1:8080"
# One poll a second stays well below the api's default limit of 120 requests per minute.
POLL_SECONDS = 1.0
RATE_LIMIT_RETRIES = 3
MAX_RATE_LIMIT_WAIT = 30.0
# Workflow outcomes that count as success, per operation.
SUCCESS = {"DeviceRegister": "active", "CredentialRotate": "rotated", "DeviceDecommission": "inactive"}
SERVICE_POLICY = {"api": "api", "api-ssl": "api", "rest": "rest-api", "ssh": "ssh"}

# Without a terminal rich assumes 80 columns and truncates ids; pipes get a wider table.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]
NoWaitOption = Annotated[bool, typer.Option("--no-wait", help="Return once the workflow has started")]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait for the workflow to finish")]


class ApiError(Exception):
    """The admin API rejected a request or could not be reached; ``exit_code`` is the exit status to use."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(message: str, exit_code: int) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(exit_code)


# -- API access ---------------------------------------------------------------------------


def api_url() -> str:
    return os.environ.get("TIKFLOW_API_URL", DEFAULT_API_URL).rstrip("/")


def api_token() -> str:
    """Return ``TIKFLOW_TOKEN``, or the lab stack's ``var/dev-token``."""
    token = os.environ.get("TIKFLOW_TOKEN")
    if token:
        return token.strip()
    path = Path(os.environ.get("TIKFLOW_VAR_DIR", "var")) / "dev-token"
    if (os.environ.get("TIKFLOW_ENV") or "lab") == "lab" and path.is_file():
        return path.read_text().strip()
    fail(f"missing API token: set TIKFLOW_TOKEN (no {path} to fall back to)", EXIT_BAD_INPUT)


def call(method: str, path: str, body: dict[str, Any] | None = None,
         params: dict[str, Any] | None = None) -> Any:
    """Send one request to the admin API and return the JSON reply; raise ApiError on failure."""
    url = f"{api_url()}/api/v1{path}"
    try:
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {api_token()}"}) as http:
            response = http.request(method, url, json=body, params=params)
            for _ in range(RATE_LIMIT_RETRIES):
                if response.status_code != 429:
                    break
                time.sleep(_retry_after(response))
                response = http.request(method, url, json=body, params=params)
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach the tikflow API at {api_url()}: {type(exc).__name__}; "
                       "check TIKFLOW_API_URL and that `tikflow api` runs", EXIT_FAILED) from None
    if response.status_code < 400:
        return response.json()
    if response.status_code == 401:
        raise ApiError(f"the tikflow API at {api_url()} rejected the token; check TIKFLOW_TOKEN "
                       "(in the lab profile it defaults to var/dev-token), or run `tikflow login`",
                       EXIT_FAILED)
    raise ApiError(_error_text(response), _exit_code(response.status_code))


def _retry_after(response: httpx.Response) -> float:
    """Return the seconds a 429 reply asks to wait, capped so the CLI never stalls for long."""
    try:
        seconds = float(response.headers.get("retry-after", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.1), MAX_RATE_LIMIT_WAIT)


def _exit_code(http_status: int) -> int:
    if http_status == 404:
        return EXIT_NOT_FOUND
    if http_status in (400, 409, 422):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


def _error_text(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
                         for d in detail)
    return str(detail or f"HTTP {response.status_code}")


def run_api(method: str, path: str, body: dict[str, Any] | None = None,
            params: dict[str, Any] | None = None) -> Any:
    try:
        return call(method, path, body, params)
    except ApiError as exc:
        fail(str(exc), exc.exit_code)


def wait_for(device_id: str, workflow_id: str, timeout: float, quiet: bool) -> dict[str, Any]:
    """Poll the workflow until it finishes, showing its phase on stderr; return its last status."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    with err.status(f"{workflow_id}: starting", spinner="dots") as spinner:
        while time.monotonic() < deadline:
            last = run_api("GET", f"/devices/{device_id}/operations/{workflow_id}")
            if last.get("state") != "running":
                return last
            if not quiet:
                spinner.update(f"{workflow_id}: {last.get('phase')}: {last.get('detail') or ''}")
            time.sleep(POLL_SECONDS)
    fail(f"{workflow_id} still runs after {timeout:g} s; follow it with "
         f"`tikflow devices show {device_id}` or in the Temporal UI", EXIT_FAILED)


def finish(started: dict[str, Any], *, no_wait: bool, as_json: bool, timeout: float) -> None:
    """Print the started workflow, or wait for it and exit 1 unless it succeeded."""
    if no_wait:
        _print_json(started) if as_json else out.print(
            f"started {started['workflow_id']} for {started['device_id']}")
        return
    result = wait_for(started["device_id"], started["workflow_id"], timeout, as_json)
    ok = result.get("status") == SUCCESS.get(result.get("type", ""), "")
    if as_json:
        _print_json(started | {"result": result})
    else:
        colour = "green" if ok else "red"
        out.print(f"[{colour}]{result.get('status')}[/{colour}] {result.get('detail') or ''}",
                  highlight=False)
    if not ok:
        raise typer.Exit(EXIT_FAILED)


# -- argument parsing ---------------------------------------------------------------------


def parse_address(text: str) -> tuple[str, int | None]:
    """Split ``HOST[:PORT]``; IPv6 addresses with a port go in brackets: ``[2001:db8::1]:8728``."""
    bracketed = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", text)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    if not host:
        fail(f"invalid --address {text!r}: expected HOST or HOST:PORT", EXIT_BAD_INPUT)
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        fail(f"invalid port in --address {text!r}: expected 1 to 65535", EXIT_BAD_INPUT)
    return host, int(port) if port else None


def parse_flags(items: list[str]) -> dict[str, Any]:
    """Turn ``key=value`` options into capability flags; true/false become booleans."""
    flags: dict[str, Any] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            fail(f"invalid --capability {item!r}: expected KEY=VALUE", EXIT_BAD_INPUT)
        lowered = value.lower()
        if lowered in ("true", "false"):
            flags[key] = lowered == "true"
        else:
            flags[key] = value
    return flags


def read_password_file(path: str) -> str:
    """Read a password from a file (``-`` reads standard input), without the trailing newline."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read --password-file {path}: {getattr(exc, 'strerror', None) or exc}",
             EXIT_BAD_INPUT)
    password = text.rstrip("\r\n")
    if not password:
        fail(f"--password-file {path} is empty", EXIT_BAD_INPUT)
    return password


# -- output -------------------------------------------------------------------------------


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def device_table(devices: list[dict[str, Any]]) -> Table:
    table = Table("name", "id", "address", "transport", "env", "status", "version", "tags")
    for device in devices:
        table.add_row(device["name"], device["id"], f"{device['address']}:{device['port']}",
                      device["transport"], device["environment"], device["status"],
                      device.get("version") or "", ", ".join(device.get("tags", [])))
    return table


def device_details(device: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None)
    for key in ("name", "id", "status", "status_reason", "environment", "address", "port",
                "transport", "identity", "version", "board", "tags", "capabilities",
                "tls_fingerprint", "snapshots"):
        value = device.get(key)
        if isinstance(value, list | dict):
            value = json.dumps(value, sort_keys=True) if value else ""
        table.add_row(f"[bold]{key}[/bold]", "" if value is None else str(value))
    for credential in device.get("credentials", []):
        table.add_row("[bold]credential[/bold]",
                      f"{credential['username']} generation {credential['generation']} "
                      f"({credential['state']})")
    return table


# -- commands -----------------------------------------------------------------------------


@app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Unique device name")],
    address: Annotated[str, typer.Option(help="Management address, HOST or HOST:PORT")],
    transport: Annotated[str, typer.Option(help="api, api-ssl, rest or ssh")],
    env: Annotated[str, typer.Option("--env", help="lab, staging or prod")],
    username: Annotated[str, typer.Option(help="RouterOS user tikflow logs in as")],
    password_file: Annotated[str | None, typer.Option(help="File holding the password; - reads stdin")] = None,
    password_ref: Annotated[str | None, typer.Option(help="env:NAME or file:/path, read by the api")] = None,
    tag: Annotated[list[str], typer.Option(help="Tag; repeat for several")] = [],  # noqa: B006 - typer needs a list default.
    capability: Annotated[list[str], typer.Option(help="Capability flag KEY=VALUE; repeatable")] = [],  # noqa: B006
    tls_fingerprint: Annotated[str | None, typer.Option(help="SHA-256 of the device certificate")] = None,
    as_json: JsonOption = False,
    no_wait: NoWaitOption = False,
    timeout: TimeoutOption = 180.0,
) -> None:
    """Register a device: store its credential encrypted, then connect, check and snapshot it."""
    if (password_file is None) == (password_ref is None):
        fail("give exactly one of --password-file or --password-ref", EXIT_BAD_INPUT)
    host, port = parse_address(address)
    body: dict[str, Any] = {
        "name": name, "address": host, "port": port, "transport": transport, "environment": env,
        "tags": tag, "capabilities": parse_flags(capability), "tls_fingerprint": tls_fingerprint,
        "username": username,
    }
    if password_file is not None:
        body["password"] = read_password_file(password_file)
    else:
        body["password_ref"] = password_ref
    started = run_api("POST", "/devices", body)
    finish(started, no_wait=no_wait, as_json=as_json, timeout=timeout)


@app.command("retry-registration")
def retry_registration(
    device: Annotated[str, typer.Argument(help="Device id or name of a pending device")],
    username: Annotated[str | None, typer.Option(help="New RouterOS user; default: the stored one")] = None,
    password_file: Annotated[str | None, typer.Option(help="File holding a new password; - reads stdin")] = None,
    password_ref: Annotated[str | None, typer.Option(help="env:NAME or file:/path, read by the api")] = None,
    as_json: JsonOption = False,
    no_wait: NoWaitOption = False,
    timeout: TimeoutOption = 180.0,
) -> None:
    """Register a pending device again, optionally with a new credential."""
    if password_file is not None and password_ref is not None:
        fail("give at most one of --password-file or --password-ref", EXIT_BAD_INPUT)
    body: dict[str, Any] = {"username": username, "password_ref": password_ref}
    if password_file is not None:
        body["password"] = read_password_file(password_file)
    started = run_api("POST", f"/devices/{device}/retry-registration",
                      {key: value for key, value in body.items() if value is not None})
    finish(started, no_wait=no_wait, as_json=as_json, timeout=timeout)


@app.command("list")
def list_devices(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status: pending, active, inactive")] = None,
    tag: Annotated[str | None, typer.Option(help="Only devices with this tag")] = None,
    as_json: JsonOption = False,
) -> None:
    """List devices."""
    params = {key: value for key, value in {"environment": env, "status": status, "tag": tag}.items()
              if value}
    devices = run_api("GET", "/devices", params=params)["items"]
    if as_json:
        _print_json(devices)
    else:
        out.print(device_table(devices))


@app.command("show")
def show(device: Annotated[str, typer.Argument(help="Device id or name")], as_json: JsonOption = False) -> None:
    """Show one device, its credentials (never their secrets) and its lifecycle workflows."""
    details = run_api("GET", f"/devices/{device}")
    operations = run_api("GET", f"/devices/{details['id']}/operations")["items"]
    if as_json:
        _print_json(details | {"operations": operations})
        return
    out.print(device_details(details))
    table = Table("workflow", "state", "status", "detail")
    for operation in operations:
        table.add_row(operation["workflow_id"], operation["state"], operation.get("status", ""),
                      operation.get("detail") or "")
    out.print(table)


@app.command("update")
def update(
    device: Annotated[str, typer.Argument(help="Device id or name")],
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Replace the tags; repeat for several")] = None,
    env: Annotated[str | None, typer.Option("--env", help="New environment (admin role)")] = None,
    capability: Annotated[list[str] | None, typer.Option(
        help="Replace the capability flags with KEY=VALUE; repeatable (admin role)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a device's name, tags, environment or capability flags."""
    body: dict[str, Any] = {"name": name, "tags": tag, "environment": env,
                            "capabilities": parse_flags(capability) if capability else None}
    updated = run_api("PATCH", f"/devices/{device}", {k: v for k, v in body.items() if v is not None})
    _print_json(updated) if as_json else out.print(device_details(updated))


@app.command("rotate-credentials")
def rotate_credentials(
    device: Annotated[str, typer.Argument(help="Device id or name")],
    policy: Annotated[str, typer.Option(help="same-user (new password) or new-user (new account)")] = "same-user",
    as_json: JsonOption = False,
    no_wait: NoWaitOption = False,
    timeout: TimeoutOption = 180.0,
) -> None:
    """Give tikflow a new router secret, prove it, then disable the old one."""
    started = run_api("POST", f"/devices/{device}/rotate-credentials", {"policy": policy})
    finish(started, no_wait=no_wait, as_json=as_json, timeout=timeout)


@app.command("decommission")
def decommission(
    device: Annotated[str, typer.Argument(help="Device id or name")],
    remove_account: Annotated[bool, typer.Option(
        "--remove-account", help="Also delete tikflow's account on the router")] = False,
    as_json: JsonOption = False,
    no_wait: NoWaitOption = False,
    timeout: TimeoutOption = 180.0,
) -> None:
    """Mark a device inactive; audit events and snapshots are kept."""
    started = run_api("POST", f"/devices/{device}/decommission",
                      {"remove_service_account": remove_account})
    finish(started, no_wait=no_wait, as_json=as_json, timeout=timeout)


@app.command("bootstrap-script")
def bootstrap_script(
    name: Annotated[str, typer.Option(help="Name the device will have in tikflow")],
    env: Annotated[str, typer.Option("--env", help="lab, staging or prod")],
    transport: Annotated[str, typer.Option(help="api, api-ssl, rest or ssh")] = "api",
    address: Annotated[str | None, typer.Option(
        help="Management address HOST[:PORT]; default: the address the router calls from")] = None,
    tag: Annotated[list[str], typer.Option(help="Tag; repeat for several")] = [],  # noqa: B006
    username: Annotated[str, typer.Option(help="Service account the script creates")] = "tikflow-svc",
    ttl: Annotated[int, typer.Option(help="Seconds the enrolment token stays valid")] = 3600,
    callback_url: Annotated[str | None, typer.Option(
        help="API URL as the router reaches it; default TIKFLOW_API_URL")] = None,
) -> None:
    """Print a RouterOS script that creates a service account and enrols the router once."""
    host, port = parse_address(address) if address else (None, None)
    created = run_api("POST", "/enrolment-tokens", {
        "name": name, "environment": env, "transport": transport, "address": host, "port": port,
        "tags": tag, "ttl_seconds": ttl})
    sys.stdout.write(render_bootstrap_script(
        name=name, transport=transport, username=username, token=created["token"],
        expires_at=created["expires_at"], url=(callback_url or api_url()).rstrip("/")))


def render_bootstrap_script(*, name: str, transport: str, username: str, token: str,
                            expires_at: str, url: str) -> str:
    """Return the RouterOS script; it holds a fresh password, so treat it as a secret."""
    password = secrets.token_urlsafe(24)
    group = username
    policy = f"read,write,policy,test,{SERVICE_POLICY.get(transport, 'api')}"
    payload = json.dumps({"token": token, "username": username, "password": password})
    escaped = payload.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return (
        f"# tikflow enrolment of {name}; the token works once and expires at {expires_at}.\n"
        "# This script contains a new password: do not store or share it.\n"
        f"/user group add name={group} policy={policy} comment=\"tikflow least privilege\"\n"
        f"/user add name={username} group={group} password=\"{password}\" "
        "comment=\"tikflow service account\"\n"
        f"/tool fetch url=\"{url}/api/v1/enrol\" http-method=post "
        "http-header-field=\"Content-Type: application/json\" "
        f"http-data=\"{escaped}\" output=none\n"
    )


schedule_app = typer.Typer(help="Rotate the credentials of a whole environment on a schedule.",
                           no_args_is_help=True)
app.add_typer(schedule_app, name="rotation-schedule")
EnvOption = Annotated[str, typer.Option("--env", help="lab, staging or prod")]


@schedule_app.command("set")
def schedule_set(
    env: EnvOption,
    every_days: Annotated[int, typer.Option(help="Days between two rotations, 1 to 365")],
    policy: Annotated[str, typer.Option(help="same-user or new-user")] = "new-user",
    as_json: JsonOption = False,
) -> None:
    """Create or replace the rotation schedule of an environment (admin role)."""
    schedule = run_api("PUT", f"/rotation-schedules/{env}", {"every_days": every_days, "policy": policy})
    _print_json(schedule) if as_json else out.print(
        f"{env}: rotating every {schedule['every_days']} days ({schedule['policy']}); "
        f"next run {schedule['next_run']}", highlight=False)


@schedule_app.command("show")
def schedule_show(as_json: JsonOption = False) -> None:
    """Show the rotation schedule of every environment that has one."""
    items = run_api("GET", "/rotation-schedules")["items"]
    if as_json:
        _print_json(items)
        return
    table = Table("env", "every (days)", "policy", "next run", "runs", "paused")
    for item in items:
        table.add_row(item["environment"], str(item["every_days"]), str(item["policy"]),
                      str(item["next_run"]), str(item["runs"]), "yes" if item["paused"] else "")
    out.print(table)


@schedule_app.command("trigger")
def schedule_trigger(env: EnvOption) -> None:
    """Run an environment's rotation now (admin role)."""
    started = run_api("POST", f"/rotation-schedules/{env}/trigger")
    out.print(f"started {started['workflow_id']}", highlight=False)


@schedule_app.command("delete")
def schedule_delete(env: EnvOption) -> None:
    """Stop periodic rotation for an environment (admin role)."""
    try:
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {api_token()}"}) as http:
            response = http.delete(f"{api_url()}/api/v1/rotation-schedules/{env}")
    except httpx.HTTPError as exc:
        fail(f"cannot reach the tikflow API at {api_url()}: {type(exc).__name__}", EXIT_FAILED)
    if response.status_code >= 400:
        fail(_error_text(response), _exit_code(response.status_code))
    out.print(f"{env}: rotation schedule deleted", highlight=False)
