"""Pull-secret passwords at rest: Fernet (AES-128-CBC + HMAC-SHA256).

The key comes from ``settings.secret_key`` (any string; SHA-256 makes it a Fernet key) or else from
``<data_dir>/secret.key``, created with mode 0600 on first use. Losing the key means re-entering
every pull-secret password; see docs/security.md.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from modeldeck.context import Platform
from modeldeck.secrets.tables import ImagePullSecret
from modeldeck.settings import Settings

KEY_FILE = "secret.key"


class SecretKeyError(RuntimeError):
    """The stored password cannot be decrypted with the configured key (the key changed or was lost)."""


def fernet(settings: Settings) -> Fernet:
    return _fernet(settings.secret_key, str((settings.data_dir / KEY_FILE).resolve()))


@lru_cache(maxsize=16)
def _fernet(secret_key: str | None, key_file: str) -> Fernet:
    if secret_key:
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest()))
    return Fernet(_load_or_create(Path(key_file)))


def _load_or_create(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written under a private name, then linked into place: two processes starting together
        # cannot both create a key, and nobody ever reads a half-written file.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, Fernet.generate_key())
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError as exc:
        raise SecretKeyError(f"{path} does not hold a Fernet key") from exc
    return key


def encrypt_password(settings: Settings, password: str) -> str:
    return fernet(settings).encrypt(password.encode()).decode()


def decrypt_password(source: Platform | Settings, secret: ImagePullSecret) -> str:
    """The plaintext password, for runtimes that write registry credentials; never log it."""
    settings = source.settings if isinstance(source, Platform) else source
    try:
        return fernet(settings).decrypt(secret.password_encrypted.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyError(
            f"cannot decrypt image pull secret {secret.name!r}: the secret key changed; re-enter its password"
        ) from exc
