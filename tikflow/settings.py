"""Effective configuration: environment variables, then a config file, then profile defaults.

Precedence, highest first:

1. ``TIKFLOW_*`` environment variables (nested keys use ``__``: ``TIKFLOW_DATABASE__URL``);
2. ``TIKFLOW_<NAME>_FILE`` variables naming a file that holds a secret (mounted secrets);
3. the YAML, TOML or JSON file named by ``TIKFLOW_CONFIG``;
4. the defaults of the profile chosen by ``TIKFLOW_ENV`` (or ``MCP_ENV``): lab, staging or prod.

Secret fields are ``SecretStr`` and may only come from the environment or ``*_FILE``: a config
file that contains one is rejected, so secrets never end up in version-controlled files.
"""

from __future__ import annotations

import json
import os
import tomllib
from enum import StrEnum
from functools import lru_cache
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "TIKFLOW_"


class Profile(StrEnum):
    """Deployment profile; lab is permissive, prod restrictive."""

    LAB = "lab"
    STAGING = "staging"
    PROD = "prod"


class DatabaseSettings(BaseModel):
    url: str = Field("sqlite+aiosqlite:///var/tikflow.db", description="SQLAlchemy async URL")
    pool_size: int = Field(5, ge=1, le=200, description="Connections kept per process (PostgreSQL)")
    echo: bool = Field(False, description="Log every SQL statement")
    password: SecretStr | None = Field(
        None, description="Password inserted into url when the URL carries none (mounted secrets)"
    )

    @model_validator(mode="after")
    def _insert_password(self) -> DatabaseSettings:
        # A URL that already names a password keeps it: the explicit URL wins.
        if self.password is None:
            return self
        parts = urlsplit(self.url)
        if parts.password is not None or parts.username is None:
            return self
        secret = quote(self.password.get_secret_value(), safe="")
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{parts.username}:{secret}@{host}"
        self.url = urlunsplit(parts._replace(netloc=netloc))
        return self


class TemporalSettings(BaseModel):
    address: str = Field("127.0.0.1:7233", description="Temporal frontend host:port")
    namespace: str = "default"
    task_queue: str = Field("tikflow", description="Task queue shared by all tikflow workers")
    ui_url: str = Field("http://127.0.0.1:8233", description="Temporal UI base URL for links")


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    public_url: str | None = Field(None, description="External URL, e.g. behind Cloudflare Tunnel")


class WorkerSettings(BaseModel):
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Serve the worker's Prometheus metrics on this port")
    metrics_host: str = Field("127.0.0.1", description="Address the worker's metrics listen on")
    max_concurrent_activities: int = Field(
        50, ge=1, le=1000, description="Activities one worker process runs at the same time; "
        "lower it to spread work over more workers")


class TunnelSettings(BaseModel):
    hostname: str | None = Field(None, description="Public hostname served by cloudflared")
    origin_port: int = Field(8080, ge=1, le=65535, description="Local port cloudflared forwards to")


class RouterOSSettings(BaseModel):
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a device session")
    command_timeout: float = Field(30.0, gt=0, description="Seconds one device command may take")
    retries: int = Field(5, ge=1, le=50, description="Attempts for a retryable device call")
    max_per_device: int = Field(2, ge=1, le=16, description="Concurrent sessions per device")


class OidcSettings(BaseModel):
    issuer: str | None = Field(None, description="OpenID Connect issuer URL")
    audience: str = Field("tikflow", description="Expected `aud` claim of access tokens")
    client_id: str | None = None
    client_secret: SecretStr | None = None
    roles_claim: str = Field("groups", description="Claim that carries the caller's roles")
    clock_skew_seconds: int = Field(60, ge=0, le=600)


Role = Literal["reader", "operator", "approver", "admin"]
Tier = Literal["read", "plan", "apply", "admin"]
Environment = Literal["lab", "staging", "prod"]


class RateLimitSettings(BaseModel):
    per_caller_per_minute: int = Field(120, ge=1, description="MCP tool calls and admin API "
                                       "requests one caller may make per minute")
    per_device_per_minute: int = Field(60, ge=1, description="Tool calls touching one device per minute")


class AuthSettings(BaseModel):
    """Token checks, claim-to-role mapping, the access matrix, break-glass and rate limits."""

    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
        description="JWS algorithms accepted on access tokens; asymmetric algorithms only",
    )
    role_claims: list[str] = Field(
        default_factory=lambda: ["groups", "roles", "scope", "scp"],
        description="Token claims searched for role values; space-separated strings are split",
    )
    role_map: dict[Role, list[str]] = Field(
        default_factory=lambda: {
            "reader": ["tikflow-reader", "tikflow:read"],
            "operator": ["tikflow-operator", "tikflow:operate"],
            "approver": ["tikflow-approver", "tikflow:approve"],
            "admin": ["tikflow-admin", "tikflow:admin"],
        },
        description="Claim values that grant each role",
    )
    matrix: dict[Role, dict[Tier, list[Environment]]] = Field(
        default_factory=dict,
        description="Overrides of the role x tier -> environments matrix; see `tikflow auth matrix`",
    )
    break_glass_enabled: bool = Field(False, description="Accept local break-glass tokens")
    jwks_refresh_min_seconds: float = Field(
        30.0, ge=0, description="Minimum seconds between JWKS refetches caused by an unknown key id"
    )
    http_timeout_seconds: float = Field(5.0, gt=0, le=60, description="Seconds per IdP request")
    rate_limits: RateLimitSettings = RateLimitSettings()

    @model_validator(mode="after")
    def _reject_symmetric_algorithms(self) -> AuthSettings:
        # HS* would let anyone holding the public JWKS mint tokens; "none" means unsigned.
        bad = [alg for alg in self.algorithms if alg.lower() == "none" or alg.upper().startswith("HS")]
        if bad:
            raise ValueError(f"auth.algorithms contains {', '.join(bad)}; only asymmetric "
                             "algorithms (RS*, PS*, ES*, EdDSA) are allowed")
        if not self.algorithms:
            raise ValueError("auth.algorithms is empty; list at least one, e.g. RS256")
        return self


class PlanSettings(BaseModel):
    require_approval: bool = Field(False, description="Every plan needs an approver first")
    approval_timeout_seconds: int = Field(86400, ge=1, description="Unapproved plans expire")
    approval_policy: dict[str, str] = Field(
        default_factory=lambda: {"lab": "auto", "staging": "one", "prod": "four_eyes"},
        description="Per environment: auto, one (any approver) or four_eyes (not the author)",
    )
    dead_man_for_high_risk: bool = Field(True, description="Arm a device-side restore job first")
    dead_man_seconds: int = Field(120, ge=10, description="Seconds before the restore job fires")
    canary: int = Field(1, ge=0, description="Devices changed alone before the first batch")
    batch_size: int = Field(10, ge=1, description="Devices per batch after the canary")
    max_parallel: int = Field(10, ge=1, description="Devices changed at the same time")


class UpdateSettings(BaseModel):
    release_url: str | None = Field(
        None, description='Release endpoint returning JSON {"version": "x.y.z", "url": ...}'
    )
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="Seconds to wait for it")
    check_interval_seconds: int = Field(
        0, ge=0, description="The api asks the release endpoint this often; 0 turns the check off")


class SnapshotPolicy(BaseModel):
    """Scheduled configuration exports of the devices in one environment."""

    enabled: bool = Field(True, description="Run the snapshot schedule of this environment")
    interval_seconds: int = Field(3600, ge=1, description="Seconds between two exports of each "
                                  "active device; keep it at or below the environment's RPO")
    retention: int = Field(24, ge=1, le=100_000, description="Scheduled snapshots kept per device; "
                           "older ones are deleted, snapshots taken for plans are kept")


class SnapshotSettings(BaseModel):
    """Snapshot schedule per device environment (``snapshot-schedule:{env}`` in Temporal)."""

    lab: SnapshotPolicy = SnapshotPolicy()
    staging: SnapshotPolicy = SnapshotPolicy(retention=72)
    prod: SnapshotPolicy = SnapshotPolicy(interval_seconds=900, retention=200)


class LoggingSettings(BaseModel):
    level: str = "INFO"
    format: str = Field("auto", pattern="^(auto|json|console)$")


class Settings(BaseSettings):
    """All tikflow configuration; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
    )

    env: Profile = Profile.LAB
    var_dir: Path = Field(Path("var"), description="Runtime state: SQLite file, dev token, logs")
    database: DatabaseSettings = DatabaseSettings()
    temporal: TemporalSettings = TemporalSettings()
    api: ApiSettings = ApiSettings()
    worker: WorkerSettings = WorkerSettings()
    tunnel: TunnelSettings = TunnelSettings()
    routeros: RouterOSSettings = RouterOSSettings()
    oidc: OidcSettings = OidcSettings()
    auth: AuthSettings = AuthSettings()
    plans: PlanSettings = PlanSettings()
    logging: LoggingSettings = LoggingSettings()
    updates: UpdateSettings = UpdateSettings()
    snapshots: SnapshotSettings = SnapshotSettings()
    disabled_tools: list[str] = Field(default_factory=list, description="MCP tools switched off")
    disabled_tiers: list[str] = Field(
        default_factory=list, description="Risk tiers switched off: read, plan, apply or admin")
    dev_token: SecretStr | None = Field(None, description="Bearer token accepted in the lab profile")
    master_key: SecretStr | None = Field(
        None, description="Envelope key (urlsafe base64, 32 bytes) encrypting device credentials"
    )

    @model_validator(mode="after")
    def _reject_dev_token_outside_lab(self) -> Settings:
        if self.dev_token is not None and self.env is not Profile.LAB:
            raise ValueError(
                "dev_token is only accepted in the lab profile; unset TIKFLOW_DEV_TOKEN "
                f"or set TIKFLOW_ENV=lab (current profile: {self.env.value})"
            )
        return self

    @model_validator(mode="after")
    def _reject_dev_token_off_loopback(self) -> Settings:
        if self.dev_token is None:
            return self
        if not is_loopback_host(self.api.host):
            raise ValueError(
                f"dev_token is only accepted when the api binds a loopback address, not "
                f"{self.api.host}; set TIKFLOW_API__HOST=127.0.0.1 or unset TIKFLOW_DEV_TOKEN"
            )
        # A tunnel or a public URL makes a loopback-bound api reachable from elsewhere.
        public_host = urlsplit(self.api.public_url).hostname if self.api.public_url else None
        if self.tunnel.hostname or (public_host and not is_loopback_host(public_host)):
            raise ValueError(
                "dev_token is not accepted while the api is published through "
                f"{self.tunnel.hostname or self.api.public_url}; unset TIKFLOW_DEV_TOKEN and "
                "log in through the identity provider (tikflow login)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _ProfileAliasSource(settings_cls),
            env_settings,
            _SecretFileSource(settings_cls),
            _ConfigFileSource(settings_cls),
            _ProfileDefaultsSource(settings_cls, init_settings),
        )


SECRET_FIELDS = {"dev_token": ("dev_token",), "master_key": ("master_key",),
                 "oidc_client_secret": ("oidc", "client_secret"),
                 "database_password": ("database", "password")}

PROFILE_DEFAULTS: dict[Profile, dict[str, Any]] = {
    Profile.LAB: {
        "plans": {"require_approval": False},
        "auth": {"break_glass_enabled": True,
                 "matrix": {"operator": {"apply": ["lab", "staging", "prod"]}}},
    },
    Profile.STAGING: {"plans": {"require_approval": True}, "logging": {"format": "json"}},
    Profile.PROD: {
        "plans": {"require_approval": True},
        "logging": {"format": "json"},
        "routeros": {"max_per_device": 1},
    },
}


def is_loopback_host(host: str) -> bool:
    """Return True when ``host`` (a name or an address) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def selected_profile() -> Profile:
    """Return the profile named by ``TIKFLOW_ENV`` or, failing that, ``MCP_ENV``."""
    raw = os.environ.get(f"{ENV_PREFIX}ENV") or os.environ.get("MCP_ENV") or Profile.LAB.value
    try:
        return Profile(raw.lower())
    except ValueError:
        allowed = ", ".join(p.value for p in Profile)
        raise ValueError(f"TIKFLOW_ENV={raw!r} is not a profile; use one of: {allowed}") from None


class _ProfileAliasSource(PydanticBaseSettingsSource):
    """Accept ``MCP_ENV``, the runbook's name for the profile variable."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if f"{ENV_PREFIX}ENV" not in os.environ and "MCP_ENV" in os.environ:
            return {"env": selected_profile().value}
        return {}


class _SecretFileSource(PydanticBaseSettingsSource):
    """Read secrets from files named by ``TIKFLOW_<NAME>_FILE`` variables."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, keys in SECRET_FIELDS.items():
            path = os.environ.get(f"{ENV_PREFIX}{name.upper()}_FILE")
            if not path:
                continue
            try:
                secret = Path(path).read_text().strip()
            except OSError as exc:
                raise ValueError(f"cannot read {ENV_PREFIX}{name.upper()}_FILE={path}: {exc.strerror}") from None
            _set_nested(values, keys, secret)
        return values


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Load the YAML, TOML or JSON file named by ``TIKFLOW_CONFIG``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(f"{ENV_PREFIX}CONFIG")
        return load_config_file(Path(path)) if path else {}


class _ProfileDefaultsSource(PydanticBaseSettingsSource):
    """Defaults of the profile passed to ``Settings(env=...)`` or named by the environment."""

    def __init__(self, settings_cls: type[BaseSettings], init: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._init = init

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        given = getattr(self._init, "init_kwargs", {}).get("env")
        try:
            profile = Profile(str(given.value if isinstance(given, Profile) else given).lower()) \
                if given else selected_profile()
        except ValueError:
            profile = selected_profile()  # the field's own validation reports the bad value
        return json.loads(json.dumps(PROFILE_DEFAULTS[profile]))


def load_config_file(path: Path) -> dict[str, Any]:
    """Parse a config file by its suffix and reject secrets stored in it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        data = yaml.safe_load(text) or {}
    elif suffix == ".toml":
        data = tomllib.loads(text)
    elif suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"config file {path} must end in .yaml, .yml, .toml or .json")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must contain a mapping at the top level")
    for name, keys in SECRET_FIELDS.items():
        if _get_nested(data, keys) is not None:
            raise ValueError(
                f"config file {path} contains the secret {'.'.join(keys)}; move it to "
                f"{ENV_PREFIX}{'__'.join(keys).upper()} or {ENV_PREFIX}{name.upper()}_FILE"
            )
    return data


def _set_nested(target: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def _get_nested(source: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(source, dict) or key not in source:
            return None
        source = source[key]
    return source


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once."""
    return Settings()
