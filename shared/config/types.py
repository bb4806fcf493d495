"""Typed settings and the values they may take: what the rest of the code receives.

``shared/config.py`` loads and validates ``config.yaml`` into these.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter
from marshmallow import ValidationError, fields, validate

from shared.config.notifications import NotificationChannel

ENGINES = ("postgres", "mongodb")
COMPRESSIONS = ("gzip", "zstd", "none")
# zstd's levels without --ultra (20-22 need windows of 32 MiB+ per thread).
ZSTD_MAX_LEVEL = 19
PACKAGE_FORMATS = ("zip", "tar.gz")
# \Z, not $: Python's $ also matches before a trailing newline, which let "y\n" in.
DATABASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}\Z"
ID_ERROR = (
    "must start with a letter or digit and contain only letters, digits, '_' or '-'"
    " (at most 63 characters)"
)
DEFAULT_PORTS = {"postgres": 5432, "mongodb": 27017}
# Long-term (GFS) retention keys, global or per database (shared/retention/policy.py).
KEEP_KEYS = ("keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
MAX_KEEP = 100_000
# API key scopes; what each grants is in shared/api_keys.py (admin > write > read).
SCOPES = ("read", "write", "admin", "metrics")
KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}\Z"
KEY_NAME_ERROR = ("must start with a letter or digit and contain only letters, digits, "
                  "'_', '.', '@' or '-' (at most 100 characters)")
# A key declared in the config must be long enough to be unguessable (a generated key
# has 47 characters; `openssl rand -base64 32` gives 44).
MIN_CONFIG_KEY_LENGTH = 32
# The five cron fields with the values each may take (day of week: 0 and 7 are Sunday).
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
               ("day of week", 0, 7))
# The macros croniter expands (e.g. "@daily" is "0 0 * * *"); "@reboot" means nothing here.
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


# --- validators shared with the API schemas -------------------------------------------


def validate_cron(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is a five-field cron expression or one of
    ``CRON_MACROS``; the message names the field at fault (``hour: 25 is out of range 0-23``).
    """
    if not isinstance(value, str):
        raise ValidationError("a cron expression must be a string")
    problem = _macro_problem(value) if value.strip().startswith("@") else _fields_problem(value)
    if problem:
        raise ValidationError(problem)


def _macro_problem(value: str) -> str | None:
    if value in CRON_MACROS:
        return None
    if value.strip() in CRON_MACROS:  # croniter counts the fields of " @daily" and finds one
        return f"{value!r}: write the macro without spaces around it"
    return f"unknown cron macro {value!r}: use one of {', '.join(CRON_MACROS)} or five fields"


def _fields_problem(value: str) -> str | None:
    parts = value.split()
    if len(parts) != len(CRON_FIELDS):
        return (f"a cron expression has 5 fields (minute hour day-of-month month day-of-week),"
                f" {value!r} has {len(parts)}")
    for index, (name, low, high) in enumerate(CRON_FIELDS):
        # This field with every other one "*": croniter then judges this field alone.
        alone = " ".join(part if i == index else "*" for i, part in enumerate(parts))
        if not croniter.is_valid(alone):
            return f"{name}: {_field_problem(parts[index], low, high)}"
    try:
        croniter(value, datetime(2000, 1, 1)).get_next(datetime)
    except (CroniterError, ValueError):
        # Each field is valid, but together they never meet (e.g. "0 0 30 2 *").
        return f"day of month: {parts[2]} never occurs in month {parts[3]}"
    return None


def _field_problem(part: str, low: int, high: int) -> str:
    if re.search(r"/0+(?!\d)", part):
        return f"{part!r} has a step of 0"
    # Numbers after "/" (a step) or "#" (the nth weekday) are not positions in the range.
    for number in re.findall(r"(?<![/#\d])\d+", part):
        if not low <= int(number) <= high:
            return f"{number} is out of range {low}-{high}"
    return (f"{part!r} is not valid (expected *, a number {low}-{high}, a range a-b,"
            " a list a,b or a step */n)")


def keep_count(allow_none: bool = False) -> fields.Integer:
    """Return the field of one ``keep_*`` count: a whole number from 0 to ``MAX_KEEP``.

    Strict: ``1.5`` or ``"7"`` is refused rather than read as 1 or 7.
    """
    message = f"must be a whole number from 0 to {MAX_KEEP} (0 turns the rule off)"
    return fields.Integer(strict=True, allow_none=allow_none,
                          validate=validate.Range(min=0, max=MAX_KEEP, error=message),
                          error_messages={"invalid": message})


def validate_timezone(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is an IANA time zone name."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValidationError(f"unknown time zone: {value!r}") from exc


# --- typed settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class EncryptionSettings:
    """``encryption`` (global or per database): see docs/configuration.md.

    ``type: age`` encrypts new artifacts to ``recipients`` (public keys); ``type: none``
    turns encryption off (for one database under a global one). ``identity_file`` (the
    secret keys, config-only) is what verify and restore decrypt with; the worker reads
    it only then.
    """

    type: str = "none"
    recipients: tuple[str, ...] = ()
    identity_file: str | None = None

    def as_row(self) -> dict[str, Any]:
        """Return what a row records: ``{"type", "recipients"}``, never the identity file."""
        if self.type == "none":
            return {"type": "none"}
        return {"type": self.type, "recipients": list(self.recipients)}


@dataclass(frozen=True)
class ScratchServer:
    """``verify.scratch``: the server test restores create their scratch database on
    (config-only). ``engine``, when set, limits it to databases of that engine."""

    host: str
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    engine: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifySettings:
    """``verify`` (global or per database): see shared/config/verify.py.

    ``given`` names the keys the file set: a database's section overrides the global
    one key by key (``schedule: null`` turns scheduled verification off there).
    """

    schedule: str | None = None
    test_restore: bool = False
    scratch: ScratchServer | None = None
    given: frozenset[str] = frozenset()


@dataclass(frozen=True)
class GlobalSettings:
    schedule: str = "0 2 * * *"
    compression: str = "gzip"
    # Wherever zstd is used: its level, and its worker threads (0: none, the backup's own
    # thread compresses; -1: one per core). See shared/compression.py.
    zstd_level: int = 3
    zstd_threads: int = 0
    retention_days: int = 14
    max_backups: int = 10
    min_backups: int = 1
    max_parallel_jobs: int = 4
    timezone: str = "UTC"
    backup_time_limit: int = 6 * 3600
    beat_interval: int = 30
    heartbeat_timeout: int = 120
    overdue_grace: int = 3600
    # Long-term (GFS) retention: see shared/retention/policy.py; 0 turns a rule off.
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    # Tries of a backup interrupted by its worker's death (see worker/beat/reaper.py).
    max_attempts: int = 2
    # Bytes that must stay free on local storage after a backup (see worker/bounds.py).
    min_free_bytes: int = 0
    # Names and CIDRs backups may connect to; empty: anywhere (see shared/allowed_hosts.py).
    allowed_hosts: tuple[str, ...] = ()
    encryption: EncryptionSettings | None = None
    verify: VerifySettings | None = None

    @property
    def hard_time_limit(self) -> int:
        """Seconds after which Celery kills a job that ignored its soft time limit.

        The margin lets a job that hit ``backup_time_limit`` clean up (abort its
        upload, fail its row) before the kill.
        """
        return self.backup_time_limit + 120

    @property
    def visibility_timeout(self) -> int:
        """Seconds a queued message stays invisible to other workers (Redis).

        Above the time limit, so Redis never hands a running job to a second worker;
        a pending row older than this will never be picked up.
        """
        return self.backup_time_limit + 3600


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
    # The checksums as object metadata: a server-side copy after a multipart upload.
    object_metadata: bool = False


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
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_yearly: int | None = None
    package: bool = False
    enabled: bool = True
    # Whether backups of other databases may be restored over this one.
    restore_target: bool = False
    # None: the global encryption applies.
    encryption: EncryptionSettings | None = None
    # Stored bytes past which a backup is stopped and failed (see worker/bounds.py).
    max_size_bytes: int | None = None
    # None: the global verify applies (keys given here override it one by one).
    verify: VerifySettings | None = None


@dataclass(frozen=True)
class PackageSettings:
    schedule: str | None = None
    compression: str = "zip"
    retention_days: int = 60
    max_packages: int = 5


@dataclass(frozen=True)
class ConfigKey:
    """An API key declared in ``auth.keys`` (upserted as ``managed_by: config``)."""

    name: str
    scopes: tuple[str, ...]
    key: str = field(repr=False)


@dataclass(frozen=True)
class AuthSettings:
    """``auth``: keys from the config; ``disabled`` and ``metrics_public`` open doors."""

    keys: tuple[ConfigKey, ...] = ()
    disabled: bool = False
    metrics_public: bool = False


@dataclass(frozen=True)
class ApiSettings:
    """``api``: the HTTP server's settings.

    ``trusted_hosts`` are the names a request's ``Host`` may carry besides the defaults
    (the loopback names, the bind address, and this machine's name and addresses when
    bound to every interface): any other is refused (DNS rebinding). ``.example.com``
    trusts example.com and every name under it.
    """

    trusted_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuntimeSettings:
    """What comes from the environment rather than the file."""

    config_path: str
    data_dir: str
    database_url: str
    broker_url: str
    # False when the default ./config.yaml is absent and every default applies.
    config_found: bool = True
    # BACKUP_API_SECRET_KEY (comma-separated keys) and BACKUP_API_SECRET_KEY_FILE, as
    # given: shared.secrets turns them into the keyring of stored secrets.
    secret_key: str = field(default="", repr=False)
    secret_key_file: str = ""


@dataclass(frozen=True)
class Settings:
    runtime: RuntimeSettings
    global_: GlobalSettings = field(default_factory=GlobalSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    databases: tuple[DatabaseSpec, ...] = ()
    package: PackageSettings = field(default_factory=PackageSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    # ``notifications``: where failures are announced (shared/config/notifications.py).
    notifications: tuple[NotificationChannel, ...] = ()

    @property
    def storage_path(self) -> str:
        """Directory of local storage: ``storage.path`` or ``DATA_DIR/backups``."""
        return self.storage.path or os.path.join(self.runtime.data_dir, "backups")
