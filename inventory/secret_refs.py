"""Secret references: ``env:NAME`` and ``file:/path`` name a secret without containing it.

An operator can register a device with a reference instead of the password itself, so the
password never appears in a shell history or a request body. The api process resolves the
reference once, when it stores the credential encrypted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SECRET_BYTES = 4096


class SecretRefError(ValueError):
    """A secret reference is malformed or names a secret that cannot be read."""


def resolve_secret_ref(ref: str) -> str:
    """Return the secret that ``ref`` names, without its trailing newline.

    Raises:
        SecretRefError: The reference has an unknown scheme, names a missing variable or an
            unreadable file, or the secret is empty or larger than ``MAX_SECRET_BYTES``. The
            message names the reference, never the secret.
    """
    scheme, separator, target = ref.partition(":")
    if not separator or not target:
        raise SecretRefError(
            f"invalid secret reference {ref!r}: use env:NAME or file:/absolute/path"
        )
    if scheme == "env":
        secret = _read_env(target)
    elif scheme == "file":
        secret = _read_file(target)
    else:
        raise SecretRefError(
            f"invalid secret reference scheme {scheme!r} in {ref!r}: use env:NAME or file:/path"
        )
    if not secret:
        raise SecretRefError(f"secret reference {ref!r} names an empty secret")
    if len(secret.encode()) > MAX_SECRET_BYTES:
        raise SecretRefError(f"secret named by {ref!r} is longer than {MAX_SECRET_BYTES} bytes")
    return secret


def _read_env(name: str) -> str:
    if not _ENV_NAME.match(name):
        raise SecretRefError(f"invalid environment variable name {name!r} in secret reference")
    value = os.environ.get(name)
    if value is None:
        raise SecretRefError(f"environment variable {name} named by env:{name} is not set")
    return value.rstrip("\r\n")


def _read_file(path_text: str) -> str:
    path = Path(path_text)
    if not path.is_absolute():
        raise SecretRefError(f"secret file path {path_text!r} must be absolute")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SecretRefError(f"cannot read secret file {path_text}: {err.strerror}") from None
    try:
        return data.decode().rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretRefError(f"secret file {path_text} is not UTF-8 text") from None
