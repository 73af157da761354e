"""Encryption at rest for the tokens in the store.

Tokens are sealed with AES-256-GCM. The row they belong to (user, app, field) is
bound in as associated data, so a sealed token copied into another row does not
open there. The key is ``APSHOOKS_SECRET_KEY`` when set (every machine sharing a
PostgreSQL store must use the same one), or else a key file generated beside
the default database and readable only by its owner.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from aps.errors import StoreError

_NONCE = 12
# A fixed salt is fine here: it only stretches a passphrase into a key; the key
# never leaves the machines that were given the passphrase.
_SALT = b"apshooks session store"


class Cipher:
    """Seals and opens the tokens of the session store."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def from_secret(cls, secret: str) -> Cipher:
        """A cipher from ``APSHOOKS_SECRET_KEY``: a base64 key or a passphrase."""
        try:
            key = base64.urlsafe_b64decode(secret.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            key = b""
        if len(key) != 32:
            key = hashlib.scrypt(
                secret.encode(), salt=_SALT, n=2**14, r=8, p=1, dklen=32
            )
        return cls(key)

    @classmethod
    def from_key_file(cls, path: Path) -> Cipher:
        """A cipher whose key lives in ``path``, created on first use (mode 0600)."""
        return cls(base64.urlsafe_b64decode(key_file(path)))

    @staticmethod
    def generate() -> str:
        """A new key for ``APSHOOKS_SECRET_KEY``."""
        return base64.urlsafe_b64encode(AESGCM.generate_key(bit_length=256)).decode()

    def seal(self, value: str, context: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, value.encode(), context.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        try:
            raw = base64.b64decode(sealed, validate=True)
            opened = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise StoreError(
                "A stored session cannot be decrypted with this machine's key. "
                "Set APSHOOKS_SECRET_KEY to the key the other machines use, or "
                "sign in again to replace the session."
            ) from None
        return opened.decode()


def key_file(path: Path) -> str:
    """The key kept in ``path`` (as ``APSHOOKS_SECRET_KEY`` text), made if missing."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass

    # Written aside, then linked into place: a process that starts at the same
    # moment sees either no key file or a whole one, never half of one.
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Cipher.generate()
    fd, draft = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(draft, path)
    except FileExistsError:
        return _read_key(path)  # Another process made it first.
    finally:
        os.unlink(draft)
    return key


def _read_key(path: Path) -> str:
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = base64.urlsafe_b64decode(text)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise StoreError(
            f"The key file {path} is damaged. Restore it from a backup, or move "
            "it aside and sign in again (the stored sessions cannot be read "
            "without it)."
        )
    return text
