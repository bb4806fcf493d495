"""Typed settings and the values they may take: what the rest of the code receives.

``shared/config.py`` loads and validates ``config.yaml`` into these.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from marshmallow import ValidationError

ENGINES = ("postgres", "mongodb")
COMPRESSIONS = ("gzip", "zstd", "none")
PACKAGE_FORMATS = ("zip", "tar.gz")
DATABASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
ID_ERROR = (
    "must start with a letter or digit and contain only letters, digits, '_' or '-'"
    " (at most 63 characters)"
)
DEFAULT_PORTS = {"postgres": 5432, "mongodb": 27017}


# --- validators shared with the API schemas -------------------------------------------


def validate_cron(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is a five-field cron expression."""
    if not isinstance(value, str) or len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValidationError(f"not a valid 5-field cron expression: {value!r}")


def validate_timezone(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is an IANA time zone name."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValidationError(f"unknown time zone: {value!r}") from exc


# --- typed settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class GlobalSettings:
    schedule: str = "0 2 * * *"
    compression: str = "gzip"
    retention_days: int = 14
    max_backups: int = 10
    min_backups: int = 1
    max_parallel_jobs: int = 4
    timezone: str = "UTC"
    backup_time_limit: int = 6 * 3600
    beat_interval: int = 30
    heartbeat_timeout: int = 120
    overdue_grace: int = 3600


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    region: str | None = None
    prefix: str = ""
    path_style: bool | None = None
    create_bucket: bool = False
    server_side_encryption: str | None = None
    object_metadata: bool = True


@dataclass(frozen=True)
class StorageSettings:
    type: str = "local"
    path: str | None = None
    s3: S3Settings | None = None


@dataclass(frozen=True)
class DatabaseSpec:
    """One database as declared in ``config.yaml`` (overrides left ``None``)."""

    id: str
    engine: str
    database_name: str
    name: str | None = None
    host: str = "localhost"
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    schedule: str | None = None
    timezone: str | None = None
    compression: str | None = None
    retention_days: int | None = None
    max_backups: int | None = None
    min_backups: int | None = None
    package: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class PackageSettings:
    schedule: str | None = None
    compression: str = "zip"
    retention_days: int = 60
    max_packages: int = 5


@dataclass(frozen=True)
class RuntimeSettings:
    """What comes from the environment rather than the file."""

    config_path: str
    data_dir: str
    database_url: str
    broker_url: str
    # False when the default ./config.yaml is absent and every default applies.
    config_found: bool = True


@dataclass(frozen=True)
class Settings:
    runtime: RuntimeSettings
    global_: GlobalSettings = field(default_factory=GlobalSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    databases: tuple[DatabaseSpec, ...] = ()
    package: PackageSettings = field(default_factory=PackageSettings)

    @property
    def storage_path(self) -> str:
        """Directory of local storage: ``storage.path`` or ``DATA_DIR/backups``."""
        return self.storage.path or os.path.join(self.runtime.data_dir, "backups")
