"""Rows of the metadata DB: registered databases and their backups."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from shared.secrets import Encrypted

ACTIVE_STATUSES = ("pending", "running")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware UTC datetimes; SQLite returns naive ones, so re-attach UTC on load."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Database(Base):
    """A database to back up. Overrides are ``None`` when the global value applies."""

    __tablename__ = "databases"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    engine: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(255))
    # Encrypted with BACKUP_API_SECRET_KEY (shared/secrets.py); a MongoDB uri may hold one.
    password: Mapped[str | None] = mapped_column(Encrypted())
    database_name: Mapped[str] = mapped_column(String(255))
    options: Mapped[dict[str, Any]] = mapped_column(Encrypted(fields=("uri",)), default=dict)
    schedule: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str | None] = mapped_column(String(64))
    compression: Mapped[str | None] = mapped_column(String(16))
    retention_days: Mapped[int | None] = mapped_column(Integer)
    max_backups: Mapped[int | None] = mapped_column(Integer)
    min_backups: Mapped[int | None] = mapped_column(Integer)
    # Long-term (GFS) retention, 0011: the newest backup of each of the last N days,
    # ISO weeks, months and years stays (shared/retention/policy.py).
    keep_daily: Mapped[int | None] = mapped_column(Integer)
    keep_weekly: Mapped[int | None] = mapped_column(Integer)
    keep_monthly: Mapped[int | None] = mapped_column(Integer)
    keep_yearly: Mapped[int | None] = mapped_column(Integer)
    package: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Whether backups of *other* databases may be restored over this one.
    restore_target: Mapped[bool] = mapped_column(Boolean, default=False,
                                                 server_default=false())
    # {"type": "age", "recipients": [...]} or {"type": "none"}; None: the global setting.
    encryption: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    managed_by: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Backup(Base):
    """One backup attempt and, when completed, where its artifact lives."""

    __tablename__ = "backups"

    id: Mapped[str] = mapped_column(String(36), primary_key=True,
                                    default=lambda: str(uuid.uuid4()))
    # Not a foreign key: backups outlive a deleted database unless asked otherwise.
    database_id: Mapped[str] = mapped_column(String(63), index=True)
    engine: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    worker: Mapped[str | None] = mapped_column(String(255))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    compression: Mapped[str] = mapped_column(String(16))
    checksum_md5: Mapped[str | None] = mapped_column(String(32))
    checksum_sha256: Mapped[str | None] = mapped_column(String(64))
    storage: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(Text)
    # {"type": "age", "recipients": [...]} when the stored artifact is encrypted.
    encryption: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # 1 for the first try; a backup interrupted by a worker's death is tried again.
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # The latest verification (0010): ok | corrupt | restore_failed, and what was checked.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verify_status: Mapped[str | None] = mapped_column(String(16))
    verify_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Rows per table (documents per collection) in the source when the backup was taken.
    source_counts: Mapped[dict[str, int] | None] = mapped_column(JSON)
    # The pg_dumpall --globals-only artifact beside the dump (options.globals).
    globals_key: Mapped[str | None] = mapped_column(String(1024))
    # POST /backups/{id}/cancel asks; the worker running it stops and marks it cancelled.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # Listing one database's backups newest first, at any number of rows.
        Index("ix_backups_database_created", "database_id", "created_at"),
        # Listing all, or by status, newest first; the metrics' latest success (0009).
        Index("ix_backups_created_id", "created_at", "id"),
        Index("ix_backups_status_created_id", "status", "created_at", "id"),
        Index("ix_backups_status_database_finished", "status", "database_id", "finished_at"),
        # At most one pending/running backup per database, enforced by the database
        # itself so that two concurrent requests (or schedulers) cannot both win.
        Index(
            "uq_backups_one_active_per_database",
            "database_id",
            unique=True,
            postgresql_where=text("status IN ('pending', 'running')"),
            sqlite_where=text("status IN ('pending', 'running')"),
        ),
        # A scheduled slot yields at most one backup, whichever beat enqueued it.
        Index("uq_backups_schedule_slot", "database_id", "scheduled_for", unique=True),
    )

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return round((self.finished_at - self.started_at).total_seconds(), 3)
        return None


class Package(Base):
    """A bundle of the latest completed backups of several databases."""

    __tablename__ = "packages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True,
                                    default=lambda: str(uuid.uuid4()))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    trigger: Mapped[str] = mapped_column(String(16), default="manual")
    format: Mapped[str] = mapped_column(String(16))
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    checksum_md5: Mapped[str | None] = mapped_column(String(32))
    checksum_sha256: Mapped[str | None] = mapped_column(String(64))
    storage: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    # The requested database ids (None: every database with package: true).
    database_ids: Mapped[list[str] | None] = mapped_column(JSON)
    # [{"database_id", "backup_id"}] actually bundled, and database ids without a backup.
    backups: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    missing: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    encryption: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # At most one pending package at a time: a flood of requests cannot fill the
        # queue, and two racing requests cannot both win (migration 0005).
        Index("uq_packages_one_pending", "status", unique=True,
              postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
    )


class Counter(Base):
    """A cluster-wide monotonic counter (metrics that must survive restarts and workers).

    ``labels`` is a canonical JSON object string, so (name, labels) identifies a series.
    """

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    labels: Mapped[str] = mapped_column(String(512), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=0.0)


class Restore(Base):
    """Reading a backup back: a checksum verification, or a restore into a database."""

    __tablename__ = "restores"

    id: Mapped[str] = mapped_column(String(36), primary_key=True,
                                    default=lambda: str(uuid.uuid4()))
    kind: Mapped[str] = mapped_column(String(16))  # verify | restore
    backup_id: Mapped[str] = mapped_column(String(36), index=True)
    database_id: Mapped[str] = mapped_column(String(63))
    target_database_id: Mapped[str | None] = mapped_column(String(63))
    confirm: Mapped[bool] = mapped_column(Boolean, default=False)
    # Apply the backup's PostgreSQL globals (roles, tablespaces) first and keep owners (0011).
    apply_globals: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What was checked: bytes read, checksums recomputed, tool output summary.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return round((self.finished_at - self.started_at).total_seconds(), 3)
        return None


class ScheduleSlot(Base):
    """The latest cron slot a periodic job fired for (``backup:<database id>``, ``retention``…).

    Beat advances ``last_slot`` in the same transaction that records the work, so two
    beats cannot both fire one slot, and after downtime only the latest slot is due.
    """

    __tablename__ = "schedule_slots"

    job: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_slot: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StorageLeftover(Base):
    """A partial artifact whose deletion failed: beat deletes it later (shared/leftovers.py).

    A failed or killed writer leaves a temporary file or an open S3 multipart upload that
    only ``Storage.delete`` removes; when the storage cannot be reached at that moment
    (the S3 endpoint is down: that is why the backup failed), the key waits here.
    """

    __tablename__ = "storage_leftovers"

    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)


class ApiKey(Base):
    """An API key: only a hash of the secret is kept, with its scopes and last use."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True,
                                    default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The first characters of the key, to tell keys apart in lists and logs.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    managed_by: Mapped[str] = mapped_column(String(16), default="cli")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
