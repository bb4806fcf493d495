"""Client-side encryption of artifacts with age: recipients, identities, and the streams.

An encrypted artifact is a standard age file (https://age-encryption.org/v1) to X25519
recipients (``age1…``, as ``age-keygen`` prints them), so ``age -d -i key.txt`` opens a
download without this program. The cryptography is pyrage's (the Rust ``age`` crate).

pyrage streams with a pull-style call, ``encrypt_io(reader, writer, …)``, while our
pipelines push chunks (dump → compress → encrypt → hash → store):
``shared.stream_thread.StreamThread`` runs that call in a thread fed chunk by chunk, so
memory stays at a few chunks whatever the artifact's size.

Identities (secret keys) are only ever read from ``encryption.identity_file``, by the
worker, for verify and restore; they never appear in a message, a row or a sidecar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import pyrage

from shared.errors import BackupError
from shared.stream_thread import StreamThread

AGE = "age"
NONE = "none"
TYPES = (AGE, NONE)
# File name suffix of an encrypted artifact (``….dump.gz.age``), as the age tool writes.
SUFFIX = ".age"
RECIPIENT_HELP = "must be an age public key: age1… as printed by age-keygen"
_RECIPIENT = re.compile(r"age1[a-z0-9]{58}\Z")
_SECRET_PREFIX = "AGE-SECRET-KEY-"
# A secret key as pyrage holds it (only X25519 keys, as age-keygen makes them).
Identity = pyrage.x25519.Identity


# --- recipients and identities -------------------------------------------------------


def recipient_problem(value: object) -> str | None:
    """Return why ``value`` is not an age X25519 recipient, or None.

    The value itself is never repeated: a secret key pasted in the wrong place must
    not end up in an error message, a log or a response.
    """
    if not isinstance(value, str):
        return RECIPIENT_HELP
    if value.strip().upper().startswith(_SECRET_PREFIX):
        return ("this is a secret key (an identity), not a recipient: give its public key "
                "(age-keygen -y key.txt) and keep the secret key in identity_file")
    if not _RECIPIENT.match(value):
        return RECIPIENT_HELP
    try:
        pyrage.x25519.Recipient.from_str(value)
    except pyrage.RecipientError:
        return f"{RECIPIENT_HELP} (this one has a typo: its checksum does not match)"
    return None


def load_identities(path: str) -> list[Identity]:
    """Read the X25519 identities of an age identity file (as ``age-keygen -o`` writes).

    Blank lines and ``#`` comments are skipped. Raise ``BackupError`` naming the file
    and the line at fault, never its content.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BackupError(f"cannot read encryption.identity_file {path!r}: "
                          f"{exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BackupError(f"encryption.identity_file {path!r} is not an age identity file "
                          "(not text)") from None
    identities = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except Exception:  # noqa: BLE001 - pyrage.IdentityError; never quote the line
            raise BackupError(f"encryption.identity_file {path!r}, line {number}: not an age "
                              "secret key (AGE-SECRET-KEY-1…; only X25519 keys from "
                              "age-keygen are supported)") from None
    if not identities:
        raise BackupError(f"encryption.identity_file {path!r} holds no age secret key")
    return identities


def identities_for(what: str, encryption: Mapping[str, Any],
                   paths: Sequence[str]) -> list[Identity]:
    """Return the identities in ``paths`` that open an artifact encrypted as ``encryption``.

    ``what`` names the artifact in messages (``backup 1f2e…``). Raise ``BackupError``
    saying what to do when no identity file is configured or none of its keys matches.
    """
    if not paths:
        raise BackupError(f"{what} is encrypted with age; set encryption.identity_file in "
                          "config.yaml to verify or restore it")
    recipients = set(encryption.get("recipients") or [])
    found = [identity for path in dict.fromkeys(paths) for identity in load_identities(path)]
    matching = [i for i in found if str(i.to_public()) in recipients]
    if not matching:
        raise BackupError(f"{what} is encrypted with age to {', '.join(sorted(recipients))}; "
                          f"none of the keys in encryption.identity_file "
                          f"({', '.join(dict.fromkeys(paths))}) is one of them")
    return matching


# --- streams ---------------------------------------------------------------------------


class Encryptor(Protocol):
    """Feed chunks to ``encrypt``; ``flush`` once at the end for the tail.

    Use it as a context manager: leaving the block without ``flush`` (an error
    upstream) stops the stream and its thread.
    """

    def encrypt(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def __enter__(self) -> Encryptor: ...

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None: ...


class _Plain:
    """No encryption: bytes pass through."""

    def encrypt(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""

    def __enter__(self) -> _Plain:
        return self

    def __exit__(self, *_: object) -> None:
        pass


def make_encryptor(encryption: Mapping[str, Any] | None) -> Encryptor:
    """Return an encryptor for a row's ``encryption`` (None: a pass-through)."""
    if not encryption or encryption.get("type") != AGE:
        return _Plain()
    recipients = [pyrage.x25519.Recipient.from_str(r) for r in encryption["recipients"]]
    return _AgeEncryptor(recipients)


class _AgeEncryptor:
    def __init__(self, recipients: list[pyrage.x25519.Recipient]) -> None:
        self._stream = StreamThread(
            lambda src, dst: pyrage.encrypt_io(src, dst, recipients), "age-encrypt")

    def encrypt(self, data: bytes) -> bytes:
        return self._stream.push(data)

    def flush(self) -> bytes:
        try:
            return self._stream.close()
        except Exception as exc:  # noqa: BLE001 - pyrage raises its own and OSError
            raise BackupError(f"age encryption failed: {exc}") from None

    def __enter__(self) -> _AgeEncryptor:
        return self

    def __exit__(self, *_: object) -> None:
        self._stream.abort()


class Decryptor:
    """Decrypt an age stream pushed in chunks; never raises while fed.

    ``decrypt`` returns the plaintext available so far (nothing once the stream
    broke); ``finish`` returns the rest, after which ``error`` says what went wrong
    (a damaged or truncated stream), or is None. ``close`` stops it early.
    """

    def __init__(self, identities: Sequence[Identity]) -> None:
        self.error: str | None = None
        keys = list(identities)
        self._stream = StreamThread(
            lambda src, dst: pyrage.decrypt_io(src, dst, keys), "age-decrypt")

    def decrypt(self, data: bytes) -> bytes:
        return self._stream.push(data)

    def finish(self) -> bytes:
        try:
            return self._stream.close()
        except Exception as exc:  # noqa: BLE001 - pyrage raises its own and OSError
            self.error = f"the age stream is damaged or truncated: {exc}"
            return b""

    def close(self) -> None:
        self._stream.abort()
