"""Envelope encryption of device credentials.

Secrets are sealed with Fernet (AES-128-CBC + HMAC-SHA256). The key ring holds the current key
and any older keys still needed to open existing rows; ``reencrypt`` moves a ciphertext to the
current key, so a key rotation needs no downtime: add the new key first, re-encrypt, then drop
the old one.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretDecryptionError(Exception):
    """A stored secret could not be opened with any key in the ring."""


def key_id_of(key: str) -> str:
    """Return a short, non-secret identifier for a key (first 12 hex of its SHA-256)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def generate_key() -> str:
    return Fernet.generate_key().decode()


class KeyRing:
    """The current envelope key plus older keys kept for decryption only."""

    def __init__(self, current: str, *older: str) -> None:
        for key in (current, *older):
            try:
                if len(base64.urlsafe_b64decode(key.encode())) != 32:
                    raise ValueError
            except ValueError:
                raise ValueError(
                    "the master key must be 32 bytes in urlsafe base64; create one with "
                    "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
                ) from None
        self._keys = {key_id_of(k): Fernet(k.encode()) for k in (current, *older)}
        self.current_id = key_id_of(current)

    def encrypt(self, secret: str) -> tuple[bytes, str]:
        """Return the ciphertext and the id of the key that sealed it."""
        return self._keys[self.current_id].encrypt(secret.encode()), self.current_id

    def decrypt(self, ciphertext: bytes, key_id: str) -> str:
        fernet = self._keys.get(key_id)
        if fernet is None:
            raise SecretDecryptionError(f"no key with id {key_id} in the key ring")
        try:
            return fernet.decrypt(ciphertext).decode()
        except InvalidToken:
            raise SecretDecryptionError(f"ciphertext does not open with key {key_id}") from None

    def reencrypt(self, ciphertext: bytes, key_id: str) -> tuple[bytes, str]:
        return self.encrypt(self.decrypt(ciphertext, key_id))
