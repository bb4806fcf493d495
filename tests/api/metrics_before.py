"""The ``/metrics`` backup collector as it was before the rewrite for 1,000 databases
(``api/prometheus.py`` at commit 69f5eaa), kept as the oracle that
``test_metrics_same_as_before.py`` compares the fast one with: prometheus_client's
families and writer, plain GROUP BY queries, no caches (``is_overdue`` as it was, without the
brackets ``shared/metrics/overdue.py`` now keeps). Only the module header is new.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from celery import Celery
from croniter import croniter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.catalog import effective
from shared.config import Settings
from shared.metadata_db import MetadataDB
from shared.metrics.counters import read_series
from shared.metrics.record import (
    BACKUPS_TOTAL,
    DURATION,
    DURATION_BUCKETS,
    OUTCOMES,
    PACKAGES_TOTAL,
    RETENTION_DELETED_TOTAL,
    format_le,
)
from shared.models import Backup, Database, Package, utcnow

log = logging.getLogger(__name__)
PING_TIMEOUT = 1.0


class BackupCollector:
    """Build the ``backup_api_*`` families from the metadata DB at each scrape."""

    def __init__(self, db: MetadataDB, settings: Settings, celery: Celery | None) -> None:
        self.db, self.settings, self.celery = db, settings, celery

    def describe(self) -> list[Metric]:
        # Nothing at registration time: describing would need the database.
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("backup_api_metadata_db_up",
                               "1 when the metadata DB answered this scrape")
        try:
            with self.db.session() as session:
                families = list(self._from_db(session))
        except Exception as exc:  # noqa: BLE001 - a scrape must answer, not fail with 500
            log.warning("metrics: metadata DB unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield from families
        workers = self._workers()
        if workers is not None:
            yield workers

    def _from_db(self, session: Session) -> Iterator[Metric]:
        series = read_series(session, [BACKUPS_TOTAL, PACKAGES_TOTAL, RETENTION_DELETED_TOTAL,
                                DURATION + "_bucket", DURATION + "_count", DURATION + "_sum"])
        values = {(name, tuple(sorted(labels.items()))): value for name, labels, value in series}
        databases = list(session.scalars(select(Database).order_by(Database.id)))
        # Known (database, engine) pairs: registered databases and any that counted before.
        pairs = {(db.id, db.engine) for db in databases} | {
            (labels["database_id"], labels["engine"]) for name, labels, _ in series
            if name == BACKUPS_TOTAL}

        def value(name: str, **labels: str) -> float:
            return values.get((name, tuple(sorted(labels.items()))), 0.0)

        backups = _counter(BACKUPS_TOTAL, "Finished backups by outcome",
                           ["database_id", "engine", "status"])
        duration = HistogramMetricFamily(DURATION, "Duration of completed backups",
                                         labels=["database_id", "engine"])
        # Every series starts at 0, so increase() sees a database's first failure.
        for db_id, engine in sorted(pairs):
            for status in OUTCOMES:
                backups.add_metric([db_id, engine, status], value(
                    BACKUPS_TOTAL, database_id=db_id, engine=engine, status=status))
            buckets = [(format_le(b), value(DURATION + "_bucket", database_id=db_id,
                                            engine=engine, le=format_le(b)))
                       for b in DURATION_BUCKETS]
            duration.add_metric([db_id, engine], buckets,
                                value(DURATION + "_sum", database_id=db_id, engine=engine))
        yield backups
        yield duration

        retention = _counter(RETENTION_DELETED_TOTAL, "Artifacts removed by retention",
                             ["database_id"])
        for db_id in sorted({db_id for db_id, _ in pairs} | {
                labels["database_id"] for name, labels, _ in series
                if name == RETENTION_DELETED_TOTAL}):
            retention.add_metric([db_id], value(RETENTION_DELETED_TOTAL, database_id=db_id))
        yield retention

        packages = _counter(PACKAGES_TOTAL, "Finished packages by outcome",
                            ["status"])
        for status in OUTCOMES:
            packages.add_metric([status], value(PACKAGES_TOTAL, status=status))
        yield packages
        yield from self._gauges(session, databases)

    def _gauges(self, session: Session, databases: list[Database]) -> Iterator[Metric]:
        done = Backup.status == "completed"
        last = dict(session.execute(select(Backup.database_id, func.max(Backup.finished_at))
                                    .where(done).group_by(Backup.database_id)).all())
        newest = (select(Backup.database_id, func.max(Backup.finished_at).label("at"))
                  .where(done).group_by(Backup.database_id).subquery())
        sizes = session.execute(
            select(Backup.database_id, func.max(Backup.size_bytes)).join(
                newest, (Backup.database_id == newest.c.database_id)
                & (Backup.finished_at == newest.c.at)).where(done)
            .group_by(Backup.database_id)).all()

        size = GaugeMetricFamily("backup_api_backup_size_bytes",
                                 "Size of the latest completed backup", labels=["database_id"])
        for db_id, size_bytes in sorted(sizes):
            size.add_metric([db_id], float(size_bytes or 0))
        yield size

        success = GaugeMetricFamily("backup_api_backup_last_success_timestamp_seconds",
                                    "Unix time the latest completed backup finished",
                                    labels=["database_id"])
        for db_id, at in sorted(last.items()):
            if at is not None:
                success.add_metric([db_id], at.timestamp())
        yield success

        overdue = GaugeMetricFamily(
            "backup_api_backup_overdue",
            "1 when the last success is older than the schedule interval plus the grace",
            labels=["database_id"])
        now = utcnow()
        for db in databases:
            if db.enabled:
                overdue.add_metric([db.id], float(self._overdue(db, last.get(db.id), now)))
        yield overdue

        active = {status: count for status, count in session.execute(
            select(Backup.status, func.count()).where(Backup.status.in_(("pending", "running")))
            .group_by(Backup.status))}
        yield GaugeMetricFamily("backup_api_backups_in_progress",
                                "Backups running now, on any worker",
                                value=active.get("running", 0))
        yield GaugeMetricFamily("backup_api_backups_pending",
                                "Backups waiting for a worker (queued, or to be retried)",
                                value=active.get("pending", 0))

        package = session.execute(select(Package.size_bytes).where(Package.status == "completed")
                                  .order_by(Package.finished_at.desc()).limit(1)).scalar()
        package_size = GaugeMetricFamily("backup_api_package_size_bytes",
                                         "Size of the latest completed package")
        if package is not None:
            package_size.add_metric([], float(package))
        yield package_size

    def _overdue(self, db: Database, last: datetime | None, now: datetime) -> bool:
        eff = effective(db, self.settings.global_)
        return is_overdue(eff.schedule, eff.timezone, last, db.created_at, now,
                          self.settings.global_.overdue_grace)

    def _workers(self) -> Metric | None:
        """Count the Celery workers answering a ping; ``None`` where the broker can't say."""
        if self.celery is None or self.settings.runtime.broker_url.startswith("filesystem://"):
            return None  # kombu's filesystem transport has no broadcast to ping with.
        try:
            replies = self.celery.control.ping(timeout=PING_TIMEOUT) or []
        except Exception as exc:  # noqa: BLE001 - an unreachable broker means no worker
            log.warning("metrics: could not ping workers: %s", type(exc).__name__)
            replies = []
        return GaugeMetricFamily("backup_api_workers_online",
                                 "Celery workers that answered a ping during this scrape",
                                 value=len(replies))


def _counter(sample_name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    # prometheus_client appends _total to a counter family's name itself.
    return CounterMetricFamily(sample_name.removesuffix("_total"), doc, labels=labels)


def interval_around(schedule: str, timezone: str, when: datetime) -> timedelta:
    """Return the gap between the fire times of ``schedule`` just before and after ``when``."""
    local = when.astimezone(ZoneInfo(timezone))
    after: datetime = croniter(schedule, local).get_next(datetime)
    before: datetime = croniter(schedule, local + timedelta(microseconds=1)).get_prev(datetime)
    # Subtract in UTC: aware datetimes of one zone subtract as wall-clock times across DST.
    return after.astimezone(UTC) - before.astimezone(UTC)


def is_overdue(schedule: str, timezone: str, last_success: datetime | None,
               registered_at: datetime, now: datetime, grace_seconds: float) -> bool:
    """Return whether the last success (or the registration) is older than interval + grace."""
    baseline = last_success or registered_at
    allowed = interval_around(schedule, timezone, baseline) + timedelta(seconds=grace_seconds)
    return now - baseline > allowed
