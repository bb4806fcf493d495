"""Secrets the metadata DB stores, encrypted with the secret key (Fernet, through MultiFernet).

One column type, :class:`Encrypted`, seals values on the way in and opens them on the way
out; the rest of the code sees plain strings. The keys come from ``BACKUP_API_SECRET_KEY``
(comma-separated) or the file named by ``BACKUP_API_SECRET_KEY_FILE``; without either,
the key file of the data directory, which ``backup-api run`` (or any role on the embedded
SQLite metadata DB) generates on its first start. The first key encrypts, every key
decrypts, so a new key goes first and the old one stays listed until ``backup-api secrets
rotate`` has re-encrypted every row.

Values stored before encryption existed are read as they are (a Fernet token starts with
``gAAAAA``; a legacy value that is no token is plain text) and sealed at the next start.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import JSON, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from shared.config import RuntimeSettings
from shared.errors import SecretKeyError

KEY_VARIABLE = "BACKUP_API_SECRET_KEY"
FILE_VARIABLE = "BACKUP_API_SECRET_KEY_FILE"
GENERATED_KEY_FILE = "secret.key"
KEY_HELP = ("32 random bytes, as 64 hex digits (`openssl rand -hex 32`) or as a Fernet key "
            "(44 characters of url-safe base64)")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
# A Fernet token: version byte 0x80, timestamp, IV, at least one AES block, HMAC.
_TOKEN_PREFIX = "gAAAAA"
_MIN_TOKEN_BYTES = 1 + 8 + 16 + 16 + 32


class Keyring:
    """The keys of this process: the first encrypts, every one decrypts."""

    def __init__(self, keys: list[str], source: str, path: str | None = None,
                 generated: bool = False) -> None:
        self.source = source  # where the keys come from, for messages
        self.keys = keys  # as given, so the logs can redact them
        self.path = path  # the key file, if any
        self.generated = generated  # True when this start wrote the key file
        self._fernet = MultiFernet([Fernet(_checked(k)) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"a secret stored in the metadata DB cannot be decrypted with the keys of "
                f"{self.source}: give the key it was encrypted with ({KEY_VARIABLE} may list "
                "several, comma-separated: the first encrypts, all decrypt)") from None


def parse_keys(text: str, source: str) -> list[str]:
    """Split ``text`` into keys (commas, spaces or lines between them) and check each one."""
    keys = [key for key in re.split(r"[,\s]+", text.strip()) if key]
    if not keys:
        raise SecretKeyError(f"{source} is empty: give {KEY_HELP}")
    for number, key in enumerate(keys, 1):
        if _fernet_key(key) is None:
            raise SecretKeyError(f"{source}: key {number} of {len(keys)} is not a secret key "
                                 f"(the key is not shown): give {KEY_HELP}")
    return keys


def _checked(key: str) -> bytes:
    fernet_key = _fernet_key(key)
    if fernet_key is None:
        raise SecretKeyError(f"not a secret key: give {KEY_HELP}")
    return fernet_key


def _fernet_key(key: str) -> bytes | None:
    """Return ``key`` as Fernet wants it (url-safe base64 of 32 bytes), or None."""
    if _HEX_KEY.fullmatch(key):
        return base64.urlsafe_b64encode(bytes.fromhex(key))
    try:
        raw = base64.urlsafe_b64decode(key.encode())
    except (binascii.Error, ValueError):
        return None
    return key.encode() if len(raw) == 32 and len(key) == 44 else None


def load_keyring(runtime: RuntimeSettings, generate: bool) -> Keyring:
    """Return the keys named by the environment, or the data directory's key file.

    With neither, generate that file when ``generate`` (the embedded default: the data
    directory is this machine's); otherwise fail naming the variable.
    """
    if runtime.secret_key and runtime.secret_key_file:
        raise SecretKeyError(f"set {KEY_VARIABLE} or {FILE_VARIABLE}, not both")
    if runtime.secret_key:
        return Keyring(parse_keys(runtime.secret_key, KEY_VARIABLE), KEY_VARIABLE)
    if runtime.secret_key_file:
        source = f"{FILE_VARIABLE} ({runtime.secret_key_file})"
        return Keyring(parse_keys(_read(runtime.secret_key_file, source), source), source)
    path = os.path.join(runtime.data_dir, GENERATED_KEY_FILE)
    source = f"{path} ({KEY_VARIABLE} is not set)"
    generated = False
    if not os.path.exists(path):
        if not generate:
            raise SecretKeyError(
                f"no secret key: set {KEY_VARIABLE} (or {FILE_VARIABLE}) to {KEY_HELP}. It "
                "encrypts the database passwords in the metadata DB; every api, worker and "
                "beat needs the same one (docs/security.md)")
        generated = _generate(path)
    return Keyring(parse_keys(_read(path, source), source), source, path, generated)


def _read(path: str, source: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise SecretKeyError(f"cannot read {source}: {reason}") from None


def _generate(path: str) -> bool:
    """Write a new key to ``path`` (0600) unless another process just did (then False).

    Written aside and linked into place, so a sibling process never reads half a key.
    """
    private_dir(os.path.dirname(path))
    aside = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(Fernet.generate_key().decode() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(aside, path)
    except FileExistsError:
        return False  # a sibling process of the same start won; use its key
    except OSError as exc:
        raise SecretKeyError(f"cannot create the key file {path}: {exc.strerror}") from None
    finally:
        Path(aside).unlink(missing_ok=True)
    return True


def private_dir(path: str) -> None:
    """Create ``path`` as 0700, or take group and other access away from ours."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES, errno.EROFS):
            raise


# --- the process's keyring and the column type ---------------------------------------------

_keyring: Keyring | None = None


def use(keyring: Keyring | None) -> None:
    """Make ``keyring`` the one every :class:`Encrypted` column of this process uses."""
    global _keyring
    _keyring = keyring


def current() -> Keyring:
    if _keyring is None:
        raise SecretKeyError(f"no secret key loaded: set {KEY_VARIABLE} (docs/security.md)")
    return _keyring


def is_token(value: str) -> bool:
    """Tell a Fernet token from a legacy plain-text value."""
    if not value.startswith(_TOKEN_PREFIX):
        return False
    try:
        return len(base64.urlsafe_b64decode(value.encode())) >= _MIN_TOKEN_BYTES
    except (binascii.Error, ValueError):
        return False


def seal(value: str) -> str:
    return current().encrypt(value)


def unseal(value: str) -> str:
    return current().decrypt(value) if is_token(value) else value


class Encrypted(TypeDecorator[Any]):
    """A secret column: a string stored as a Fernet token.

    ``Encrypted(fields=("uri",))`` is a JSON object instead, whose string values at those
    keys are sealed and the rest stored as they are (so ``sslmode`` stays readable).
    """

    impl = Text
    cache_ok = True

    def __init__(self, fields: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.fields = fields

    def stored_type(self) -> TypeEngine[Any]:
        """The column's type in the database, without sealing."""
        return JSON() if self.fields else Text()

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(self.stored_type())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return self.transform(value, seal)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return self.transform(value, unseal)

    def transform(self, value: Any, secret: Callable[[str], str]) -> Any:
        """Apply ``secret`` (seal or unseal) to each secret string of ``value``."""
        if value is None:
            return None
        if not self.fields:
            return secret(value)
        return {key: secret(item) if key in self.fields and isinstance(item, str) else item
                for key, item in value.items()}
