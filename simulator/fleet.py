"""Serve many simulated devices from one asyncio process.

Every device has its own state, faults and one port per transport. Devices built from
the same export share its parsed tables until they write to one (copy-on-write per
table), and no device runs a thread of its own, so a thousand devices fit in one process.

Usage::

    async with Fleet(3, version="7.19") as fleet:
        for endpoint in fleet.endpoints():
            print(endpoint["name"], endpoint["api"])
        fleet.device("r1").faults.trap_on("/ip/address/add", "failure: already have such address")
"""

from __future__ import annotations

import logging
import secrets
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.api_server import ApiOptions, ApiServer
from simulator.faults import Faults
from simulator.scripting import Scheduler
from simulator.state import DeviceState
from simulator.tls import TlsMaterial, make_self_signed

logger = logging.getLogger(__name__)

TRANSPORTS = ("api", "api-ssl", "rest", "rest-ssl", "ssh")
SERVICE_USER = "tikflow"
SERVICE_GROUP = "tikflow"
SERVICE_POLICY = "api,read,write,test,sensitive,policy,rest-api,ssh"
ADMIN_USER = "admin"


def generate_password() -> str:
    """Return a random password that is never empty and safe to type (URL-safe base64)."""
    return secrets.token_urlsafe(12)


def load_template(
    *, version: str | None = None, export: str | bytes | Path | None = None, admin_password: str,
    service_password: str,
) -> DeviceState:
    """Build the starting state every device of a fleet clones, with both accounts.

    ``export`` is a file (``Path`` or a file name) or the export text itself.
    """
    if export is None:
        state = DeviceState.factory(version or "7.19", admin_password=admin_password)
    else:
        from routeros.rsc import parse_export

        data = Path(export).read_bytes() if _names_file(export) else export
        state = DeviceState.from_export(parse_export(data), version=version, admin_password=admin_password)
    state.passwords[ADMIN_USER] = admin_password
    groups = state.table("/user/group")
    if groups is None or groups.find(SERVICE_GROUP) is None:
        group = state.create_item("/user/group", {"name": SERVICE_GROUP, "policy": SERVICE_POLICY})
        # Part of the simulated factory state, so exports and diffs never list it.
        state.mark_builtin("/user/group", group)
    users = state.table("/user")
    if users is None or users.find(SERVICE_USER) is None:
        state.add_user(SERVICE_USER, SERVICE_GROUP, service_password)
    state.passwords[SERVICE_USER] = service_password
    return state


def _names_file(export: str | bytes | Path) -> bool:
    """Tell a file name apart from export text: a ``Path``, or a one-line ``str`` naming a file."""
    if isinstance(export, Path):
        return True
    return isinstance(export, str) and "\n" not in export and Path(export).is_file()


@dataclass
class Device:
    """One simulated device: state, faults, and a server per transport."""

    name: str
    state: DeviceState
    template: DeviceState
    faults: Faults = field(default_factory=Faults)
    servers: dict[str, Any] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    scheduler: Scheduler | None = None

    @property
    def version(self) -> str:
        """RouterOS version the device reports."""
        return self.state.version

    async def start(self, host: str, ports: dict[str, int], tls: TlsMaterial, api_options: ApiOptions) -> None:
        """Start the scheduler and one server per transport in ``ports`` (0 = any free port)."""
        if self.scheduler is None:
            self.scheduler = Scheduler(self.state)
        context = _tls_context(tls)
        for transport, port in ports.items():
            server = _make_server(self, transport, host, port, context, api_options)
            if server is None:
                continue
            await server.start()
            self.servers[transport] = server
            self.ports[transport] = server.port

    async def stop(self) -> None:
        """Stop every server and the scheduler."""
        for server in self.servers.values():
            await server.stop()
        self.servers.clear()
        if self.scheduler is not None:
            self.scheduler.close()
            self.scheduler = None

    async def restart(
        self, *, keep_state: bool = True, host: str = "127.0.0.1", tls: TlsMaterial | None = None,
        api_options: ApiOptions | None = None,
    ) -> None:
        """Restart on the same ports; ``keep_state=False`` returns to the starting config."""
        ports = dict(self.ports)
        material = tls or _FALLBACK_TLS.get()
        await self.stop()
        if not keep_state:
            self.state.reset_from(self.template)
        self.state.reboot()
        await self.start(host, ports, material, api_options or ApiOptions())

    def endpoint(self, host: str, credentials: dict[str, str]) -> dict[str, Any]:
        """Return how to reach this device: name, version, credentials and host:port per transport."""
        entry: dict[str, Any] = {"name": self.name, "version": self.version, **credentials}
        for transport, port in self.ports.items():
            entry[transport] = f"{host}:{port}"
        return entry


class _LazyTls:
    """One certificate per process, made on first use because key generation takes time."""

    def __init__(self) -> None:
        self._material: TlsMaterial | None = None

    def get(self) -> TlsMaterial:
        if self._material is None:
            self._material = make_self_signed()
        return self._material


_FALLBACK_TLS = _LazyTls()
_CONTEXTS: dict[str, ssl.SSLContext] = {}


def _tls_context(tls: TlsMaterial) -> ssl.SSLContext:
    context = _CONTEXTS.get(tls.fingerprint)
    if context is None:
        context = tls.server_context()
        _CONTEXTS[tls.fingerprint] = context
    return context


def _make_server(
    device: Device, transport: str, host: str, port: int, context: ssl.SSLContext, api_options: ApiOptions
) -> Any:
    if transport == "api":
        return ApiServer(device.state, faults=device.faults, host=host, port=port, options=api_options)
    if transport == "api-ssl":
        return ApiServer(device.state, faults=device.faults, host=host, port=port, tls=context, options=api_options)
    if transport in ("rest", "rest-ssl"):
        if not device.state.version_at_least(7, 1):
            return None  # RouterOS 6 has no REST API.
        from simulator.rest import RestServer

        # The fleet's one certificate, so the published fingerprint also holds for HTTPS.
        https = context if transport == "rest-ssl" else False
        return RestServer(device.state, faults=device.faults, host=host, port=port, tls=https)
    if transport == "ssh":
        from simulator.ssh import SshServer

        return SshServer(device.state, faults=device.faults, host=host, port=port)
    raise ValueError(f"unknown transport {transport!r}; use one of {', '.join(TRANSPORTS)}")


class Fleet:
    """N devices named ``r1..rN`` (or ``names``) served from this process."""

    def __init__(
        self,
        count: int = 1,
        *,
        version: str | None = None,
        export: str | bytes | Path | None = None,
        host: str = "127.0.0.1",
        base_port: int | None = None,
        transports: Sequence[str] = TRANSPORTS,
        names: Sequence[str] | None = None,
        admin_password: str | None = None,
        service_password: str | None = None,
        api_options: ApiOptions | None = None,
    ) -> None:
        if count < 1:
            raise ValueError("a fleet needs at least one device")
        if names is not None and len(names) != count:
            raise ValueError(f"got {len(names)} names for {count} devices")
        unknown = [transport for transport in transports if transport not in TRANSPORTS]
        if unknown:
            raise ValueError(f"unknown transport {unknown[0]!r}; use one of {', '.join(TRANSPORTS)}")
        self.host = host
        self.base_port = base_port
        self.transports = tuple(transports)
        self.api_options = api_options or ApiOptions()
        self.admin_password = admin_password or generate_password()
        self.service_password = service_password or generate_password()
        self.template = load_template(
            version=version, export=export, admin_password=self.admin_password,
            service_password=self.service_password,
        )
        device_names = list(names) if names is not None else [f"r{index}" for index in range(1, count + 1)]
        self.devices = [Device(name=name, state=self.template.clone(), template=self.template) for name in device_names]
        self._by_name = {device.name: device for device in self.devices}
        self.tls: TlsMaterial | None = None

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint (hex) of the certificate served on api-ssl and rest-ssl."""
        if self.tls is None:
            raise RuntimeError("fleet not started")
        return self.tls.fingerprint

    def device(self, name: str) -> Device:
        """Return the device called ``name``; raises KeyError naming the known devices."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no device {name!r}; known devices: {', '.join(list(self._by_name)[:10])}") from None

    def credentials(self) -> dict[str, str]:
        """Return the login every device accepts over every transport (the admin account)."""
        return {"username": ADMIN_USER, "password": self.admin_password}

    async def start(self) -> None:
        """Start every device's servers; ports come from ``base_port`` or the OS."""
        self.tls = _FALLBACK_TLS.get()
        for index, device in enumerate(self.devices):
            await device.start(self.host, self._ports_for(index), self.tls, self.api_options)
        logger.info("simulator fleet started: %d devices", len(self.devices))

    def _ports_for(self, index: int) -> dict[str, int]:
        if self.base_port is None:
            return {transport: 0 for transport in self.transports}
        stride = len(TRANSPORTS)
        return {
            transport: self.base_port + index * stride + TRANSPORTS.index(transport) for transport in self.transports
        }

    async def stop(self) -> None:
        """Stop every device."""
        for device in self.devices:
            await device.stop()
        logger.info("simulator fleet stopped")

    async def restart(self, name: str, *, keep_state: bool = True) -> None:
        """Restart one device on its ports, keeping or losing its configuration."""
        await self.device(name).restart(
            keep_state=keep_state, host=self.host, tls=self.tls, api_options=self.api_options
        )

    def endpoints(self) -> list[dict[str, Any]]:
        """Return, per device: name, version, username, password and ``host:port`` per transport."""
        entries = [device.endpoint(self.host, self.credentials()) for device in self.devices]
        for entry in entries:
            entry["service_username"] = SERVICE_USER
            entry["service_password"] = self.service_password
            entry["tls_fingerprint"] = self.fingerprint
        return entries

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
