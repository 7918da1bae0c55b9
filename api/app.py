"""The api process: MCP endpoint, admin API, health, metrics and version in one ASGI app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from api.admin import router as admin_router
from api.admin.audit import AuditAdminRequests
from api.authz import HideForbiddenTools
from api.console import create_console
from api.health import router as health_router
from api.mcp_tools import register_tools
from api.security import TokenAuthenticator
from api.services import Services
from api.updates import UpdateStatus, check_for_updates
from tikflow import sdnotify
from tikflow.settings import Settings
from tikflow.version import __version__


def base_url(settings: Settings) -> str:
    return (settings.api.public_url or f"http://{settings.api.host}:{settings.api.port}").rstrip("/")


def build_mcp(settings: Settings, services: Services, authenticator: TokenAuthenticator) -> MCPServer:
    url = base_url(settings)
    server = MCPServer(
        name="tikflow",
        title="tikflow",
        version=__version__,
        instructions=(
            "Change MikroTik RouterOS devices safely: read with the *.list and *.get tools, then "
            "plan.create.v1 (nothing changes yet), show the diff and risk, plan.apply.v1 with the "
            "plan_id and plan_hash, and follow plan.status.v1."
        ),
        token_verifier=authenticator,
        auth=AuthSettings(
            issuer_url=settings.oidc.issuer or url,
            resource_server_url=f"{url}/mcp",
            # The authenticator checks the audience itself (oidc.audience).
            validate_token_resource=False,
        ),
    )
    server.middleware.append(HideForbiddenTools(services))
    register_tools(server, services)
    return server


def _transport_security(settings: Settings) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if settings.api.public_url:
        parts = urlsplit(settings.api.public_url)
        hosts += [parts.netloc, parts.hostname or parts.netloc]
        origins.append(f"{parts.scheme}://{parts.netloc}")
    if settings.tunnel.hostname:
        hosts.append(settings.tunnel.hostname)
        origins.append(f"https://{settings.tunnel.hostname}")
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)


def create_app(settings: Settings) -> FastAPI:
    """Build the api application for ``settings``."""
    services = Services(settings)
    authenticator = TokenAuthenticator(settings, db=services.db)
    mcp = build_mcp(settings, services, authenticator)
    mcp_app = mcp.streamable_http_app(streamable_http_path="/mcp",
                                      transport_security=_transport_security(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            # systemd (Type=notify) waits for READY and restarts the unit when pings stop.
            sdnotify.notify("READY=1")
            watchdog = asyncio.create_task(sdnotify.run_watchdog())
            updates = asyncio.create_task(check_for_updates(settings, app.state.update_status))
            try:
                yield
            finally:
                sdnotify.notify("STOPPING=1")
                watchdog.cancel()
                updates.cancel()
        await authenticator.close()
        await services.close()

    app = FastAPI(title="tikflow", version=__version__, lifespan=lifespan,
                  docs_url="/api/docs", openapi_url="/api/v1/openapi.json")
    app.state.settings = settings
    app.state.services = services
    app.state.authenticator = authenticator
    app.state.update_status = UpdateStatus()
    app.state.resource_metadata_url = str(build_resource_metadata_url(f"{base_url(settings)}/mcp"))
    app.add_middleware(AuditAdminRequests)
    app.include_router(health_router)
    app.include_router(admin_router)
    app.add_api_route("/console", lambda: RedirectResponse("/console/", status_code=307),
                      include_in_schema=False)
    app.mount("/console", create_console(app))
    # The MCP app serves /mcp and the OAuth protected-resource metadata; mounted last so the
    # FastAPI routes above take precedence.
    app.mount("/", mcp_app)
    return app
