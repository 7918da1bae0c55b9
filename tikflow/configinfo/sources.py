"""Attribution of each effective setting to the source that supplied it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import (
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
)

from tikflow.configinfo.masking import display_value, is_secret_key
from tikflow.configinfo.validation import describe_errors, find_unknown_keys
from tikflow.settings import ENV_PREFIX, SECRET_FIELDS, Settings, selected_profile

# Labels for the sources returned by Settings.settings_customise_sources, matched by class name
# so the attribution follows the order of tikflow.settings without importing its private classes.
_SOURCE_LABELS = {
    "InitSettingsSource": "init",
    "EnvSettingsSource": "env",
    "_ProfileAliasSource": "env",
    "_SecretFileSource": "secret file",
    "_ConfigFileSource": "config file",
    "_ProfileDefaultsSource": "profile default",
}


@dataclass(frozen=True)
class SettingOrigin:
    """One effective setting: its masked value and the source that supplied it."""

    key: str
    value: Any
    source: str
    origin: str | None


class ConfigInvalidError(Exception):
    """The configuration cannot be loaded; each entry of ``problems`` names one cause."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _ordered_sources() -> list[PydanticBaseSettingsSource]:
    """Return the settings sources in the precedence order ``Settings`` itself uses."""
    return list(
        Settings.settings_customise_sources(
            Settings,
            init_settings=InitSettingsSource(Settings, init_kwargs={}),
            env_settings=EnvSettingsSource(Settings),
            dotenv_settings=DotEnvSettingsSource(Settings),
            file_secret_settings=SecretsSettingsSource(Settings),
        )
    )


def _contains(data: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def _env_variable(path: tuple[str, ...]) -> str | None:
    """Return the environment variable that set ``path`` (itself or a JSON-valued parent)."""
    upper_environ = {name.upper(): name for name in os.environ}
    if path == ("env",) and f"{ENV_PREFIX}ENV" not in upper_environ and "MCP_ENV" in os.environ:
        return "MCP_ENV"
    for depth in range(len(path), 0, -1):
        candidate = ENV_PREFIX + "__".join(part.upper() for part in path[:depth])
        if candidate in upper_environ:
            return upper_environ[candidate]
    return None


def _origin_detail(label: str, path: tuple[str, ...]) -> str | None:
    if label == "env":
        return _env_variable(path)
    if label == "secret file":
        for name, keys in SECRET_FIELDS.items():
            if keys == path:
                return f"{ENV_PREFIX}{name.upper()}_FILE"
    if label == "config file":
        return os.environ.get(f"{ENV_PREFIX}CONFIG")
    if label == "profile default":
        return selected_profile().value
    return None


def leaves(model: BaseModel, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from leaves(value, (*prefix, name))
        else:
            yield (*prefix, name), value


def ignored_keys() -> list[str]:
    """Name keys from the environment or the config file that no setting reads.

    Nested sections ignore unknown keys, so ``TIKFLOW_ROUTEROS__TIMEOUT`` or a misspelt key in
    the config file would silently have no effect.

    Raises:
        ConfigInvalidError: a source cannot be read.
    """
    try:
        sources = [
            (_SOURCE_LABELS.get(type(source).__name__, ""), source())
            for source in _ordered_sources()
        ]
    except (ValueError, OSError) as exc:
        raise ConfigInvalidError([str(exc)]) from None
    warnings = []
    for label, data in sources:
        if label in ("env", "config file"):
            warnings.extend(f"{label}: {line}" for line in find_unknown_keys(data))
    return warnings


def effective_settings() -> list[SettingOrigin]:
    """Load the settings as ``tikflow`` would and name the source of every value.

    Raises:
        ConfigInvalidError: a source cannot be read or the merged values are invalid.
    """
    try:
        settings = Settings()
        sources = [
            (_SOURCE_LABELS.get(type(source).__name__, type(source).__name__), source())
            for source in _ordered_sources()
        ]
    except ValidationError as exc:
        raise ConfigInvalidError(describe_errors(exc)) from None
    except (ValueError, OSError) as exc:
        raise ConfigInvalidError([str(exc)]) from None

    result = []
    for path, value in leaves(settings):
        label = next((name for name, data in sources if _contains(data, path)), "default")
        result.append(
            SettingOrigin(
                key=".".join(path),
                value=display_value(value, secret=is_secret_key(path)),
                source=label,
                origin=_origin_detail(label, path),
            )
        )
    return result
