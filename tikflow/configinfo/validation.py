"""Validation of configuration files with messages that never repeat a secret.

Messages are rebuilt from ``ValidationError.errors()`` because pydantic's own text repeats every
rejected input.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from tikflow.configinfo.masking import MASK, display_value, is_secret_key
from tikflow.settings import Settings, load_config_file

_MAX_QUOTED_VALUE = 60


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


class FileOnlySettings(Settings):
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
        FileOnlySettings(**data)
    except ValidationError as exc:
        problems = describe_errors(exc, data) + problems
    return problems
