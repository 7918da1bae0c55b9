"""Auth commands: ``login``, ``auth matrix``, ``auth break-glass``, ``mcp-stdio`` and ``audit``."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
import webbrowser
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tikflow.commands.core import load_settings
from tikflow.login import LoginError, OAuthClient, save_token

auth_app = typer.Typer(help="Inspect access rules and manage break-glass accounts.",
                       no_args_is_help=True)
break_glass_app = typer.Typer(help="Local emergency accounts for when the identity provider is down.",
                              no_args_is_help=True)
auth_app.add_typer(break_glass_app, name="break-glass")


def login(
    issuer: str = typer.Option(None, help="OpenID Connect issuer URL (default: oidc.issuer)"),
    client_id: str = typer.Option(None, help="OAuth client id of the CLI (default: oidc.client_id)"),
    device: bool = typer.Option(False, "--device", help="Use the device authorization grant "
                                "(enter a code on another device) instead of a local browser"),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the login URL instead of "
                                    "opening a browser"),
    use_id_token: bool = typer.Option(None, "--use-id-token/--use-access-token",
                                      help="Which token to send to tikflow (default: the access "
                                      "token when it is a JWT, else the ID token)"),
) -> None:
    """Log in at the identity provider and keep the token in the user's config folder."""
    settings = load_settings()
    issuer = issuer or settings.oidc.issuer
    client_id = client_id or settings.oidc.client_id
    if not issuer or not client_id:
        typer.echo("tikflow login: the issuer and client id are not set; pass --issuer and "
                   "--client-id or set TIKFLOW_OIDC__ISSUER and TIKFLOW_OIDC__CLIENT_ID", err=True)
        raise typer.Exit(2)
    secret = settings.oidc.client_secret.get_secret_value() if settings.oidc.client_secret else None
    client = OAuthClient(issuer, client_id, client_secret=secret)

    def open_url(url: str) -> None:
        if no_browser or not webbrowser.open(url):
            typer.echo(f"Open this URL to log in:\n  {url}", err=True)

    def show_code(url: str, code: str) -> None:
        typer.echo(f"Open {url} and enter the code {code}", err=True)

    try:
        if device:
            token = asyncio.run(client.login_with_device_code(show_code))
        else:
            token = asyncio.run(client.login_with_browser(open_url))
    except LoginError as err:
        typer.echo(f"tikflow login: {err}", err=True)
        raise typer.Exit(1) from None
    if use_id_token is not None:
        token.use_id_token = use_id_token
    path = save_token(token)
    typer.echo(f"Logged in at {issuer}; token saved to {path}")


@auth_app.command("matrix")
def matrix(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table")) -> None:
    """Print which environments each role may use each risk tier in (effective settings)."""
    from api.authz import ENVIRONMENTS, ROLES, TIERS, AccessMatrix

    access = AccessMatrix.from_settings(load_settings().auth)
    if as_json:
        typer.echo(json.dumps({role: {tier: envs for r, tier, envs in access.rows() if r == role}
                               for role in ROLES}, indent=2))
        return
    table = Table(title="role x tier -> device environments")
    table.add_column("role")
    for tier in TIERS:
        table.add_column(tier)
    for role in ROLES:
        cells = []
        for tier in TIERS:
            environments = sorted(access.environments([role], tier), key=ENVIRONMENTS.index)
            cells.append(", ".join(environments) or "-")
        table.add_row(role, *cells)
    Console().print(table)


@break_glass_app.command("create")
def break_glass_create(
    name: str = typer.Argument(..., help="Account name, e.g. oncall-1"),
    role: str = typer.Option("admin", help="Role granted: reader, operator, approver or admin"),
    valid_hours: float = typer.Option(None, help="Hours until the token expires (default: never)"),
) -> None:
    """Create a break-glass account and print its token once."""
    from api.breakglass import create_account
    from storage.db import Database

    settings = load_settings()

    async def run() -> str:
        db = Database(settings.database.url)
        try:
            return await create_account(db, name=name, role=role, created_by=_local_user(),
                                        valid_for=timedelta(hours=valid_hours) if valid_hours else None)
        finally:
            await db.dispose()

    try:
        token = asyncio.run(run())
    except ValueError as err:
        typer.echo(f"tikflow auth break-glass create: {err}", err=True)
        raise typer.Exit(2) from None
    if not settings.auth.break_glass_enabled:
        typer.echo("note: break-glass is off in this profile; set "
                   "TIKFLOW_AUTH__BREAK_GLASS_ENABLED=true to accept this token", err=True)
    typer.echo("Store this token in a safe; it is not shown again:", err=True)
    typer.echo(token)


@break_glass_app.command("list")
def break_glass_list() -> None:
    """List break-glass accounts (never their tokens)."""
    from api.breakglass import list_accounts

    accounts = _with_db(list_accounts)
    table = Table()
    for column in ("name", "role", "created by", "created", "expires", "disabled", "last used"):
        table.add_column(column)
    for account in accounts:
        table.add_row(account.name, account.role, account.created_by, _when(account.created_at),
                      _when(account.expires_at), _when(account.disabled_at), _when(account.last_used_at))
    Console().print(table)


@break_glass_app.command("disable")
def break_glass_disable(name: str = typer.Argument(..., help="Account name")) -> None:
    """Disable a break-glass account; its token stops working at once."""
    from api.breakglass import disable_account

    if not _with_db(lambda db: disable_account(db, name)):
        typer.echo(f"no active break-glass account named {name}; see `tikflow auth break-glass list`",
                   err=True)
        raise typer.Exit(1)
    typer.echo(f"Disabled break-glass account {name}")


def mcp_stdio(
    url: str = typer.Option(None, help="MCP endpoint of the remote tikflow, e.g. "
                            "https://tikflow.example.com/mcp (default: api.public_url + /mcp)"),
) -> None:
    """Serve MCP on stdin/stdout and forward it to a remote tikflow with the login token."""
    from tikflow.logging import configure_logging
    from tikflow.mcp_bridge import RefreshingBearer, check_login, run_bridge

    settings = load_settings()
    # Logs go to stderr: stdout carries the protocol.
    configure_logging(settings.logging.level, "json")
    url = url or (f"{settings.api.public_url.rstrip('/')}/mcp" if settings.api.public_url else None)
    if not url:
        typer.echo("tikflow mcp-stdio: no server URL; pass --url or set TIKFLOW_API__PUBLIC_URL",
                   err=True)
        raise typer.Exit(2)
    check_login()
    secret = settings.oidc.client_secret.get_secret_value() if settings.oidc.client_secret else None
    try:
        asyncio.run(run_bridge(url, RefreshingBearer(client_secret=secret)))
    except LoginError as err:
        typer.echo(f"tikflow mcp-stdio: {err}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


def audit(
    actor: str = typer.Option(None, help="Subject of the caller, e.g. alice@example.com"),
    action: str = typer.Option(None, help="Action, e.g. tool:plan.apply.v1; a trailing * matches "
                               "a prefix (tool:*, api:*)"),
    plan: str = typer.Option(None, help="Plan id"),
    device: str = typer.Option(None, help="Device id"),
    result: str = typer.Option(None, help="ok, rejected, denied, rate_limited, device_error or error"),
    since: datetime = typer.Option(None, help="Start time, ISO 8601, inclusive"),
    until: datetime = typer.Option(None, help="End time, ISO 8601, exclusive"),
    limit: int = typer.Option(50, min=1, max=1000, help="Events shown (ignored with --jsonl)"),
    jsonl: bool = typer.Option(False, "--jsonl", help="Export every matching event as JSON lines, "
                               "oldest first"),
) -> None:
    """Query the audit trail in the database, newest first, or export it as JSON lines."""
    from api.admin.audit import AuditFilter, event_public, iter_audit, query_audit

    filters = AuditFilter(actor=actor, action=action, plan=plan, device=device, result=result,
                          since=_aware(since), until=_aware(until))
    if jsonl:
        async def export(db: Any) -> None:
            async for event in iter_audit(db, filters):
                sys.stdout.write(json.dumps(event_public(event), ensure_ascii=False) + "\n")

        _with_db(export)
        return
    events = _with_db(lambda db: query_audit(db, filters, limit=limit))
    table = Table()
    for column in ("id", "at", "actor", "role", "action", "result", "devices", "plan", "ms"):
        table.add_column(column, overflow="fold")
    for event in events:
        table.add_row(str(event.id), _when(event.at), event.actor, event.role or "", event.action,
                      event.result, ",".join(event.device_ids), event.plan_id or "",
                      str(event.duration_ms or ""))
    Console().print(table)


def _with_db(work: Any) -> Any:
    from sqlalchemy.exc import SQLAlchemyError

    from storage.db import Database
    from tikflow.configinfo.masking import mask_url

    settings = load_settings()

    async def run() -> Any:
        db = Database(settings.database.url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except (SQLAlchemyError, OSError) as err:
        reason = getattr(err, "orig", None) or err
        typer.echo(f"tikflow: database {mask_url(settings.database.url)} failed: "
                   f"{type(reason).__name__}: {mask_url(str(reason))}; check TIKFLOW_DATABASE__URL "
                   "and run `tikflow migrate upgrade`", err=True)
        raise typer.Exit(1) from None


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _local_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.add_typer(auth_app, name="auth")
    app.command("mcp-stdio")(mcp_stdio)
    app.command("audit")(audit)
