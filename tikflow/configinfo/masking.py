"""Masking of secrets in configuration values before they are printed.

Secrets are ``SecretStr`` fields, fields whose name marks them as credentials, and passwords
inside URLs such as ``postgresql://user:password@host/db``.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from tikflow.settings import SECRET_FIELDS

MASK = "********"
_SECRET_NAME = re.compile(r"secret|password|passwd|token|private_key|master_key|api_key")


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
