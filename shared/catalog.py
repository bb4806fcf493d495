"""Registered databases: effective settings, targets, and the config upsert."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.config import (
    DEFAULT_PORTS,
    KEEP_KEYS,
    DatabaseSpec,
    EncryptionSettings,
    GlobalSettings,
    Settings,
    VerifySettings,
)
from shared.config.verify import merged
from shared.encryption import AGE
from shared.engines import Target
from shared.engines.options import api_option_errors
from shared.errors import DumpError
from shared.models import Database, utcnow

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Columns a config entry sets on its row (everything but identity and bookkeeping).
_SPEC_COLUMNS = (
    "engine", "host", "database_name", "username", "password", "options", "schedule",
    "timezone", "compression", "retention_days", "max_backups", "min_backups", "package",
    "enabled", "restore_target", *KEEP_KEYS,
)


@dataclass(frozen=True)
class Effective:
    """A database's settings once the global defaults are applied."""

    schedule: str
    timezone: str
    compression: str
    retention_days: int
    max_backups: int
    min_backups: int
    # What new backups are encrypted with: {"type": "age", "recipients": [...]}, or None.
    encryption: dict[str, Any] | None = None
    # Long-term (GFS) retention counts; 0: the rule is off.
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0


def _or(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def effective(db: Database | DatabaseSpec, defaults: GlobalSettings) -> Effective:
    """Return ``db``'s overrides, falling back to the global settings."""
    return Effective(
        schedule=_or(db.schedule, defaults.schedule),
        timezone=_or(db.timezone, defaults.timezone),
        compression=_or(db.compression, defaults.compression),
        retention_days=_or(db.retention_days, defaults.retention_days),
        max_backups=_or(db.max_backups, defaults.max_backups),
        min_backups=_or(db.min_backups, defaults.min_backups),
        encryption=effective_encryption(db, defaults),
        **{key: _or(getattr(db, key), getattr(defaults, key)) for key in KEEP_KEYS},
    )


def effective_encryption(db: Database | DatabaseSpec, defaults: GlobalSettings
                         ) -> dict[str, Any] | None:
    """Return what new backups of ``db`` are encrypted with, or None.

    The config's own setting for a database replaces the global one (``type: none``
    turns it off). A database registered through the API cannot weaken the config:
    its recipients are added to the global ones, which always stay.
    """
    own = _row(db.encryption)
    default = _row(defaults.encryption)
    if isinstance(db, Database) and db.managed_by != "config" and default is not None:
        extra = own["recipients"] if own is not None else []
        return {"type": AGE, "recipients": list(dict.fromkeys([*default["recipients"],
                                                                *extra]))}
    if db.encryption is not None:
        return own
    return default


def _row(setting: EncryptionSettings | dict[str, Any] | None) -> dict[str, Any] | None:
    """Return ``setting`` as a row records it when it encrypts, else None."""
    row = setting.as_row() if isinstance(setting, EncryptionSettings) else setting
    return row if row and row.get("type") == AGE else None


def package_encryption(settings: Settings) -> dict[str, Any] | None:
    """Return what new packages are encrypted with: the global encryption, or None.

    Members keep their own encryption inside the package (they are copied as stored).
    """
    return _row(settings.global_.encryption)


def identity_files(settings: Settings, database_id: str | None) -> list[str]:
    """Return the identity files that may decrypt an artifact of ``database_id``.

    The database's own ``encryption.identity_file`` (config-managed databases) first,
    then the global one; each may hold several keys.
    """
    files = [spec.encryption.identity_file for spec in settings.databases
             if spec.id == database_id and spec.encryption]
    if settings.global_.encryption:
        files.append(settings.global_.encryption.identity_file)
    return [path for path in dict.fromkeys(files) if path]


def verify_settings(settings: Settings, database_id: str, engine: str) -> VerifySettings:
    """Return the ``verify`` settings of ``database_id``: its own keys over the global ones.

    Only the config declares them per database; one registered through the API follows
    the global section. A scratch server declared for another engine is not used.
    """
    own = next((spec.verify for spec in settings.databases if spec.id == database_id), None)
    found = merged(own, settings.global_.verify)
    if found.scratch is not None and found.scratch.engine not in (None, engine):
        found = dataclasses.replace(found, scratch=None)
    return found


def target_of(db: Database) -> Target:
    """Return how to reach ``db`` (with its password, for the dump only).

    A database registered through the API never gets an option only the config may
    set (one stored before that rule existed fails here, naming it): ``DumpError``.
    """
    if db.managed_by != "config" and (errors := api_option_errors(db.engine, db.options)):
        raise DumpError("; ".join(f"options.{key}: {problem}" for key, problem in errors.items())
                        + f" (database {db.id!r} was registered through the API)")
    return Target(
        engine=db.engine, host=db.host, port=db.port, database_name=db.database_name,
        username=db.username, password=db.password, options=dict(db.options or {}),
    )


def restore_refusal(backup_database_id: str, target: Database) -> str | None:
    """Return why a backup of ``backup_database_id`` may not overwrite ``target``, or None.

    A backup restores into its own database. Another one takes it only when marked
    ``restore_target: true``; on a config-managed database that mark comes from the
    config alone (the API cannot change those rows and each upsert rewrites it).
    """
    if target.id == backup_database_id:
        return None
    if not target.restore_target:
        where = ("in config.yaml" if target.managed_by == "config"
                 else f"with PATCH /databases/{target.id}")
        return (f"database {target.id!r} is not a restore target: a backup of "
                f"{backup_database_id!r} restores only into {backup_database_id!r}, or into "
                f"a database marked restore_target: true ({where})")
    return None


def upsert_config_databases(session: Session, settings: Settings) -> None:
    """Insert or update every database declared in the config as ``managed_by: config``.

    A database that was declared before and is gone from the file is disabled and
    handed to the API (``managed_by: api``), not deleted: its backups stay reachable
    and the user may delete it through the API.
    """
    now: datetime = utcnow()
    declared = {spec.id: spec for spec in settings.databases}
    existing = {db.id: db for db in session.scalars(select(Database))}
    for spec in declared.values():
        row = existing.get(spec.id)
        if row is None:
            row = Database(id=spec.id, created_at=now)
            session.add(row)
        elif row.managed_by == "api":
            log.warning("database %s is declared in the config; the config now manages it",
                        spec.id)
        for column in _SPEC_COLUMNS:
            setattr(row, column, getattr(spec, column))
        row.name = spec.name or spec.id
        row.port = spec.port or DEFAULT_PORTS[spec.engine]
        row.encryption = spec.encryption.as_row() if spec.encryption else None
        row.managed_by = "config"
        row.updated_at = now
    for row in existing.values():
        if row.managed_by == "config" and row.id not in declared:
            log.warning("database %s was removed from the config; disabling it", row.id)
            row.enabled = False
            row.managed_by = "api"
            row.updated_at = now
