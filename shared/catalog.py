"""Registered databases: effective settings, targets, and the config upsert."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.config import DEFAULT_PORTS, DatabaseSpec, GlobalSettings, Settings
from shared.engines import Target
from shared.models import Database, utcnow

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Columns a config entry sets on its row (everything but identity and bookkeeping).
_SPEC_COLUMNS = (
    "engine", "host", "database_name", "username", "password", "options", "schedule",
    "timezone", "compression", "retention_days", "max_backups", "min_backups", "package",
    "enabled",
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
    )


def target_of(db: Database) -> Target:
    """Return how to reach ``db`` (with its password, for the dump only)."""
    return Target(
        engine=db.engine, host=db.host, port=db.port, database_name=db.database_name,
        username=db.username, password=db.password, options=dict(db.options or {}),
    )


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
        row.managed_by = "config"
        row.updated_at = now
    for row in existing.values():
        if row.managed_by == "config" and row.id not in declared:
            log.warning("database %s was removed from the config; disabling it", row.id)
            row.enabled = False
            row.managed_by = "api"
            row.updated_at = now
