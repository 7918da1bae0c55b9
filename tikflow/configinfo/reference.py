"""The settings reference: every setting, its variables and its default per profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tikflow.configinfo.masking import display_value, is_secret_key
from tikflow.configinfo.sources import leaves
from tikflow.configinfo.validation import FileOnlySettings
from tikflow.settings import ENV_PREFIX, PROFILE_DEFAULTS, SECRET_FIELDS, Profile, Settings

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
    settings = FileOnlySettings(**{**values, "env": profile.value})
    return {path: display_value(value, secret=is_secret_key(path)) for path, value in leaves(settings)}


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
