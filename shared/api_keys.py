"""API keys: made, stored as a hash, found, listed and revoked; config keys kept in step.

A generated key is ``bak_`` followed by ``secrets.token_urlsafe(32)``: 256 random bits,
and a prefix that secret scanners and people recognise. It is shown once; the metadata
DB keeps its SHA-256 and its first characters (to tell keys apart in ``keys list``).

Why SHA-256 and not a slow password hash (bcrypt, scrypt, argon2): slow hashes exist to
make guessing a *low-entropy* password from a stolen hash expensive. Nobody can search
2**256 keys however fast the hash, so a slow hash would only slow down every request.
A fast, unsalted hash also lets a request find its key by an index lookup on the hash
instead of trying every stored key (see :func:`find_key` on timing).

The scopes nest: ``admin`` grants everything (``write``, ``read`` and ``metrics``),
``write`` grants ``read``; ``metrics`` grants only ``/metrics``, so the Prometheus key
reads no backup and a read key cannot scrape.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.config import KEY_NAME_ERROR, KEY_NAME_PATTERN, SCOPES, Settings
from shared.errors import ConfigError, Conflict, Invalid, NotFound
from shared.metadata_db import MetadataDB
from shared.models import ApiKey, utcnow

log = logging.getLogger(__name__)

KEY_PREFIX = "bak_"
# Characters of a key kept in the clear: "bak_" and 4 random ones (24 of 256 bits).
SHOWN_CHARACTERS = 8
GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "write": frozenset({"write", "read"}),
    "read": frozenset({"read"}),
    "metrics": frozenset({"metrics"}),
}
# A key's last use is written at most this often: a busy client costs one UPDATE a
# minute, not one per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)
FIRST_KEY_NAME = "admin"


def generate_key() -> str:
    """Return a new random key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Return the hex SHA-256 of ``key``: what the metadata DB stores."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def granted(scopes: Iterable[str]) -> frozenset[str]:
    """Return every scope that ``scopes`` grant (``admin`` grants all)."""
    return frozenset().union(*(GRANTS.get(scope, frozenset()) for scope in scopes))


def parse_scopes(values: Iterable[str]) -> list[str]:
    """Return the scopes in ``values`` (``"read,write"``, or one per value); Invalid if unknown."""
    scopes = [s.strip() for value in values for s in value.split(",") if s.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise Invalid(f"unknown scope {', '.join(unknown)}: use {', '.join(SCOPES)}")
    if not scopes:
        raise Invalid(f"name at least one scope: {', '.join(SCOPES)}")
    return list(dict.fromkeys(scopes))


def find_key(session: Session, presented: str) -> ApiKey | None:
    """Return the active key whose secret is ``presented``, or None.

    Timing: the lookup compares SHA-256 digests, not secrets. What an attacker could time
    is how many leading bytes of *the hash of their guess* match a stored hash; that says
    nothing about any key, since choosing a guess whose hash has a given prefix is a
    preimage search. The final ``hmac.compare_digest`` is the constant-time comparison the
    rule asks for, kept so the check does not rest on the index alone.
    """
    digest = hash_key(presented)
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    if key is None or key.revoked_at is not None:
        return None
    return key if hmac.compare_digest(key.key_hash, digest) else None


def note_use(session: Session, key: ApiKey, now: datetime | None = None) -> None:
    """Record that ``key`` was used now, unless it was recorded less than a minute ago."""
    now = now or utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now


def create_key(session: Session, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Add a key named ``name``; return its row and its secret (the only time it exists).

    Conflict if a key (even a revoked one) has that name: a name in an audit log keeps
    meaning one key.
    """
    if not re.fullmatch(KEY_NAME_PATTERN, name):
        raise Invalid(f"key name {name!r}: {KEY_NAME_ERROR}")
    existing = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if existing is not None:
        state = "a revoked key" if existing.revoked_at else "a key"
        raise Conflict(f"{state} named {name!r} exists; choose another name")
    secret = generate_key()
    key = ApiKey(name=name, prefix=secret[:SHOWN_CHARACTERS], key_hash=hash_key(secret),
                 scopes=scopes, managed_by="cli", created_at=utcnow())
    session.add(key)
    session.flush()
    return key, secret


def revoke_key(session: Session, name: str) -> ApiKey:
    """Revoke the key named ``name`` (its next request answers 401) and return it."""
    key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is None:
        raise NotFound(f"no API key named {name!r} (see backup-api keys list)")
    if key.managed_by == "config" and key.revoked_at is None:
        raise Conflict(f"key {name!r} is declared in the config (auth.keys): remove it from "
                       "there and restart, or it comes back at the next start")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def list_keys(session: Session) -> list[ApiKey]:
    """Return every key, active and revoked, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.name)))


def describe(key: ApiKey) -> dict[str, str | list[str] | None]:
    """Return what may be shown of ``key``: everything but its hash (times in UTC, ISO)."""

    def when(at: datetime | None) -> str | None:
        return at.isoformat(timespec="seconds") if at else None

    return {"name": key.name, "prefix": key.prefix, "scopes": list(key.scopes),
            "managed_by": key.managed_by, "created_at": when(key.created_at),
            "last_used_at": when(key.last_used_at), "revoked_at": when(key.revoked_at)}


def count_keys(session: Session) -> tuple[int, int]:
    """Return (active keys, all keys ever stored)."""
    total = session.scalar(select(func.count()).select_from(ApiKey)) or 0
    active = session.scalar(select(func.count()).select_from(ApiKey)
                            .where(ApiKey.revoked_at.is_(None))) or 0
    return active, total


def create_first_key(session: Session) -> str | None:
    """Create an admin key if no key was ever stored; return its secret, else None.

    Only when the table is empty: after the operator revoked every key, a restart must
    not hand out a new one.
    """
    if count_keys(session)[1]:
        return None
    return create_key(session, FIRST_KEY_NAME, ["admin"])[1]


def sync_config_keys(db: MetadataDB, settings: Settings) -> None:
    """Upsert the keys of ``auth.keys`` as ``managed_by: config``; revoke those removed.

    API, workers and beat all run this at start, possibly at the same moment: a lost
    insert race is retried once, when the winner's rows are visible.
    """
    for attempt in (1, 2):
        try:
            with db.session() as session:
                _upsert_config_keys(session, settings)
            return
        except IntegrityError:
            if attempt == 2:
                raise


def _upsert_config_keys(session: Session, settings: Settings) -> None:
    now = utcnow()
    rows = {key.name: key for key in session.scalars(select(ApiKey))}
    by_hash = {key.key_hash: key for key in rows.values()}
    declared = {spec.name for spec in settings.auth.keys}
    for index, spec in enumerate(settings.auth.keys):
        digest = hash_key(spec.key)
        row = rows.get(spec.name)
        other = by_hash.get(digest)
        if other is not None and other.name != spec.name:
            if other.managed_by != "config" or other.name in declared or row is not None:
                raise ConfigError(f"auth.keys[{index}].key: this key is already stored as "
                                  f"{other.name!r}; give each key its own secret")
            log.warning("API key %s was renamed %s in the config", other.name, spec.name)
            row = other  # the same secret under a new name: the same key, renamed
            row.name = spec.name
        if row is None:
            row = ApiKey(name=spec.name, created_at=now)
            session.add(row)
        elif row.managed_by != "config":
            log.warning("API key %s is declared in the config; the config now manages it",
                        spec.name)
        row.prefix = spec.key[:SHOWN_CHARACTERS]
        row.key_hash = digest
        row.scopes = list(spec.scopes)
        row.managed_by = "config"
        row.revoked_at = None
    for row in rows.values():
        if row.managed_by == "config" and row.name not in declared and row.revoked_at is None:
            log.warning("API key %s was removed from the config; revoking it", row.name)
            row.revoked_at = now
