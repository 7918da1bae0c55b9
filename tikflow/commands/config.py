"""``tikflow config``: show the effective configuration and check configuration files.

Both commands print values only after masking secrets: ``SecretStr`` fields, fields whose
name marks them as credentials, and passwords inside URLs. Validation errors are rebuilt from
``ValidationError.errors()`` because pydantic's own text repeats every rejected input.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
import yaml
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
)

from tikflow.settings import (
    ENV_PREFIX,
    PROFILE_DEFAULTS,
    SECRET_FIELDS,
    Profile,
    Settings,
    load_config_file,
    selected_profile,
)

app = typer.Typer(
    name="config",
    help="Show the effective configuration or check a configuration file.",
    no_args_is_help=True,
)

MASK = "********"
EXIT_INVALID = 2
_SECRET_NAME = re.compile(r"secret|password|passwd|token|private_key|master_key|api_key")
_MAX_QUOTED_VALUE = 60

# Labels for the sources returned by Settings.settings_customise_sources, matched by class name
# so the attribution follows the order that module defines without importing its private classes.
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


# ---------------------------------------------------------------------------------- masking


def is_secret_key(path: tuple[str, ...]) -> bool:
    """Tell whether a dotted setting path names a credential."""
    return path in SECRET_FIELDS.values() or bool(_SECRET_NAME.search(path[-1].lower()))


def mask_url(text: str) -> str:
    """Replace the password of a URL such as ``postgresql://user:pw@host/db`` with a mask."""
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return text
    if not password:
        return text
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


def display_value(value: Any, *, secret: bool = False) -> Any:
    """Convert a setting value to JSON-compatible data with every secret masked."""
    if value is None:
        return None
    if secret or isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, list | tuple | set):
        return [display_value(item) for item in value]
    if isinstance(value, dict):
        return {str(k): display_value(v, secret=is_secret_key((str(k),))) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- attribution


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


def _leaves(model: BaseModel, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _leaves(value, (*prefix, name))
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
    for path, value in _leaves(settings):
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


# ----------------------------------------------------------------------------- validation


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """Return the settings model that contains the key at ``loc``, or None past a plain field."""
    model: type[BaseModel] = Settings
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _quote_input(data: Any, loc: tuple[str | int, ...]) -> str | None:
    """Return the rejected value as read from the file, masked and shortened, if it is there."""
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    keys = tuple(str(part) for part in loc if isinstance(part, str))
    if keys and is_secret_key(keys):
        return MASK
    text = json.dumps(display_value(data), default=str)
    if len(text) > _MAX_QUOTED_VALUE:
        text = text[: _MAX_QUOTED_VALUE - 3] + "..."
    return text


def _describe_unknown_key(
    loc: tuple[str | int, ...], parent: type[BaseModel] | None = None
) -> str:
    parent = parent or _model_at(loc[:-1])
    if parent is None:
        return "unknown key"
    allowed = sorted(parent.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key; allowed here: {', '.join(allowed)}{hint}"


def describe_errors(exc: ValidationError, data: Any = None) -> list[str]:
    """Turn a ValidationError into one line per problem without pydantic's echoed inputs.

    ``data``, when given, is the raw file content; non-secret rejected values are quoted from it.
    """
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc) or "(top level)"
        if error["type"] == "extra_forbidden":
            lines.append(f"{key}: {_describe_unknown_key(loc)}")
            continue
        quoted = _quote_input(data, loc) if data is not None and loc else None
        value = f" = {quoted}" if quoted is not None else ""
        lines.append(f"{key}{value}: {error['msg']}")
    return lines


def find_unknown_keys(data: Any, model: type[BaseModel] = Settings) -> list[str]:
    """Name keys of nested sections that ``model`` does not define.

    Nested settings models ignore unknown keys when validating, so a misspelt key inside a
    section would otherwise pass the check silently and take no effect.
    """
    lines = []
    for key, value in data.items() if isinstance(data, dict) else ():
        field = model.model_fields.get(str(key))
        annotation = field.annotation if field else None
        if field is None:
            if model is not Settings:  # Settings forbids extras itself, so pydantic reports them.
                lines.append(f"{key}: {_describe_unknown_key((str(key),), model)}")
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested = find_unknown_keys(value, annotation)
            lines.extend(f"{key}.{line}" for line in nested)
    return lines


def _describe_parse_error(path: Path, exc: yaml.YAMLError) -> str:
    # PyYAML's message quotes the offending line, which could be a secret, so keep the position.
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "invalid YAML"
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"config file {path} is not valid YAML{where}: {problem}"


class _FileOnlySettings(Settings):
    """``Settings`` validated from given values alone, without environment or secret files."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        *other_sources: PydanticBaseSettingsSource,
        **named_sources: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def check_file(path: Path) -> list[str]:
    """Validate one YAML, TOML or JSON configuration file against ``Settings``.

    Returns:
        One line per problem; an empty list means the file is valid. Environment variables and
        secret files play no part, so the result is the same on every machine.
    """
    try:
        data = load_config_file(path)
    except yaml.YAMLError as exc:
        return [_describe_parse_error(path, exc)]
    except ValueError as exc:
        return [str(exc)]

    problems = find_unknown_keys(data)
    try:
        _FileOnlySettings(**data)
    except ValidationError as exc:
        problems = describe_errors(exc, data) + problems
    return problems


# ------------------------------------------------------------------------------ reference

REFERENCE_START = "<!-- settings-reference:start -->"
REFERENCE_END = "<!-- settings-reference:end -->"


def env_variable_name(path: tuple[str, ...]) -> str:
    """Return the environment variable that sets the setting at ``path``."""
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def secret_file_variable(path: tuple[str, ...]) -> str | None:
    """Return the ``*_FILE`` variable that reads the secret at ``path``, if it is a secret."""
    for name, keys in SECRET_FIELDS.items():
        if keys == path:
            return f"{ENV_PREFIX}{name.upper()}_FILE"
    return None


def setting_descriptions(
    model: type[BaseModel] = Settings, prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], str]:
    """Map the path of every leaf setting under ``model`` to its field description."""
    descriptions = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            descriptions.update(setting_descriptions(annotation, (*prefix, name)))
        else:
            descriptions[(*prefix, name)] = field.description or ""
    return descriptions


def _profile_defaults(profile: Profile) -> dict[tuple[str, ...], Any]:
    values = json.loads(json.dumps(PROFILE_DEFAULTS[profile]))
    settings = _FileOnlySettings(**{**values, "env": profile.value})
    return {path: display_value(value, secret=is_secret_key(path)) for path, value in _leaves(settings)}


def settings_reference_markdown() -> str:
    """Render every setting as a Markdown table: variables, per-profile defaults, meaning."""
    descriptions = setting_descriptions(Settings)
    defaults = {profile: _profile_defaults(profile) for profile in Profile}
    lines = [
        "| setting | environment variable | lab | staging | prod | description |",
        "|---|---|---|---|---|---|",
    ]
    for path, description in descriptions.items():
        variables = f"`{env_variable_name(path)}`"
        secret_file = secret_file_variable(path)
        if secret_file:
            variables += f" or `{secret_file}`"
        cells = []
        for profile in Profile:
            value = defaults[profile][path]
            cells.append("secret, no default" if secret_file else f"`{json.dumps(value)}`")
        text = description.replace("|", "\\|")
        lines.append(f"| `{'.'.join(path)}` | {variables} | {' | '.join(cells)} | {text} |")
    return "\n".join(lines) + "\n"


def update_reference(document: Path) -> bool:
    """Replace the table between the reference markers of ``document``; True if it changed.

    Raises:
        ValueError: the document lacks the start or end marker.
    """
    text = document.read_text()
    start = text.find(REFERENCE_START)
    end = text.find(REFERENCE_END)
    if start < 0 or end < start:
        raise ValueError(f"{document} needs the lines {REFERENCE_START} and {REFERENCE_END}")
    head = text[: start + len(REFERENCE_START)]
    updated = head + "\n" + settings_reference_markdown() + text[end:]
    if updated == text:
        return False
    document.write_text(updated)
    return True


# ------------------------------------------------------------------------------- commands


def _print_table(rows: list[SettingOrigin]) -> None:
    # Plain aligned columns, never truncated, so the output can be searched with grep.
    key_width = max(len(row.key) for row in rows)
    values = [json.dumps(row.value) for row in rows]
    value_width = min(max(len(value) for value in values), 48)
    for row, value in zip(rows, values, strict=True):
        source = f"{row.source} ({row.origin})" if row.origin else row.source
        typer.echo(f"{row.key:<{key_width}}  {value:<{value_width}}  {source}")


@app.command("show")
def show(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Print the effective configuration, where each value came from, with secrets masked."""
    try:
        rows = effective_settings()
        warnings = ignored_keys()
    except ConfigInvalidError as exc:
        typer.echo("configuration is invalid:", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(EXIT_INVALID) from None

    for warning in warnings:
        typer.echo(f"warning: ignored {warning}", err=True)

    if as_json:
        payload = {row.key: {k: v for k, v in asdict(row).items() if k != "key"} for row in rows}
        typer.echo(json.dumps(payload, indent=2))
        return
    _print_table(rows)


@app.command("reference")
def reference(
    update: Annotated[
        Path | None,
        typer.Option(help="Markdown file whose settings table (between the markers) to rewrite."),
    ] = None,
) -> None:
    """Print every setting with its variables and per-profile defaults as a Markdown table."""
    if update is None:
        typer.echo(settings_reference_markdown(), nl=False)
        return
    try:
        changed = update_reference(update)
    except (ValueError, OSError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(f"{update}: {'updated' if changed else 'already up to date'}")


@app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="YAML, TOML or JSON file to validate.")],
) -> None:
    """Validate a configuration file; exit 0 when valid, 2 when invalid."""
    problems = check_file(file)
    if not problems:
        typer.echo(f"{file}: valid")
        return
    typer.echo(f"{file}: {len(problems)} problem(s)")
    for problem in problems:
        typer.echo(f"  {problem}")
    raise typer.Exit(EXIT_INVALID)
