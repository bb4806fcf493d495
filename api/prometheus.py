"""``/metrics``: HTTP metrics from prometheus-flask-exporter plus the backup metrics.

The backup metrics are read from the metadata DB at scrape time (counters table and
rows), so they are cluster-wide: right with any number of workers and API replicas,
and they survive restarts. Every replica answers the same values.

At 1,000 databases that is 24,000 samples (a 16-bucket histogram per database). The
rows are aggregated as they are read (``api.metrics_rows``: one lookup per database
in an index of migration 0009, not a scan of every backup) and the samples are written
by ``api.metrics_text`` (prometheus_client's writer takes 0.3 s for them alone); the
worker ping waits for its replies meanwhile. ``bench/many_backups.py`` measures it.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from celery import Celery
from flask import Flask, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_flask_exporter import PrometheusMetrics
from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from api.auth import METRICS_ENDPOINT
from api.metrics_rows import LES, Counted, latest_completed
from api.metrics_text import Exposition, labels
from api.metrics_verify import write_verify
from shared.catalog import effective
from shared.config import Settings
from shared.metadata_db import MetadataDB
from shared.metrics.overdue import is_overdue
from shared.metrics.record import (
    BACKUPS_TOTAL,
    DURATION,
    NOTIFICATIONS_TOTAL,
    OUTCOMES,
    PACKAGES_TOTAL,
    RETENTION_DELETED_TOTAL,
)
from shared.models import Backup, Database, Package, utcnow
from shared.notify import counts as notification_counts

log = logging.getLogger(__name__)
PING_TIMEOUT = 1.0


def init_metrics(app: Flask, db: MetadataDB, settings: Settings, celery: Celery | None) -> None:
    """Serve ``/metrics`` on ``app``: the HTTP metrics (a registry of this app's own, not
    the global one), then the backup metrics.

    Always in the Prometheus text format 0.0.4, which every scraper accepts (Prometheus
    offers it in its Accept header beside OpenMetrics).
    """
    registry = CollectorRegistry(auto_describe=False)
    collector = BackupCollector(db, settings, celery)
    # url_rule, not path: backup ids in paths would make one series per backup.
    PrometheusMetrics(app, registry=registry, group_by="url_rule",
                      excluded_paths=["^/metrics$"], path=None)

    def metrics() -> Response:
        body = generate_latest(registry).decode() + collector.render()
        # What the body is (CONTENT_TYPE_LATEST says 1.0.0 since prometheus_client 0.22).
        return Response(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)

    app.add_url_rule("/metrics", endpoint=METRICS_ENDPOINT, view_func=metrics)


class BackupCollector:
    """Write the ``backup_api_*`` families from the metadata DB at each scrape."""

    def __init__(self, db: MetadataDB, settings: Settings, celery: Celery | None) -> None:
        self.db, self.settings, self.celery = db, settings, celery

    def render(self) -> str:
        """Return the families as exposition text, read now."""
        # The ping waits its whole timeout for replies: let it wait while the DB works.
        workers: list[int | None] = [None]
        ping = threading.Thread(target=lambda: workers.__setitem__(0, self._workers()),
                                daemon=True)
        ping.start()
        out, rows = Exposition(), Exposition()
        out.family("backup_api_metadata_db_up", "gauge",
                   "1 when the metadata DB answered this scrape")
        try:
            with self.db.session() as session:
                self._from_db(session, rows)
        except Exception as exc:  # noqa: BLE001 - a scrape must answer, not fail with 500
            log.warning("metrics: metadata DB unavailable: %s", type(exc).__name__)
            out.sample("backup_api_metadata_db_up", "", 0)
        else:
            out.sample("backup_api_metadata_db_up", "", 1)
            out.extend(rows)
        ping.join()
        if workers[0] is not None:
            out.family("backup_api_workers_online", "gauge",
                       "Celery workers that answered a ping during this scrape")
            out.sample("backup_api_workers_online", "", workers[0])
        return out.text()

    def _from_db(self, session: Session, out: Exposition) -> None:
        counted = Counted.read(session)
        # No passwords: they are not needed here, and decrypting 1,000 costs a scrape 50 ms.
        databases = list(session.scalars(select(Database).order_by(Database.id).options(
            defer(Database.password), defer(Database.options))))
        # Known (database, engine) pairs: registered databases and any that counted before.
        pairs = sorted({(db.id, db.engine) for db in databases} | {
            (db_id, engine) for db_id, engine, _ in counted.totals})

        # Each pair's labels, written once; "status" sorts after them, as labels() would put it.
        pair_labels = {pair: labels(database_id=pair[0], engine=pair[1]) for pair in pairs}
        # Every series starts at 0, so increase() sees a database's first failure.
        out.family(BACKUPS_TOTAL, "counter", "Finished backups by outcome")
        for (db_id, engine), both in pair_labels.items():
            for status in OUTCOMES:
                out.sample(BACKUPS_TOTAL, f'{both},status="{status}"',
                           counted.totals.get((db_id, engine, status), 0.0))
        out.family(DURATION, "histogram", "Duration of completed backups")
        for pair, both in pair_labels.items():
            buckets = counted.buckets.get(pair, {})
            out.histogram(DURATION, both, [(le, buckets.get(le, 0.0)) for le in LES],
                          counted.sums.get(pair, 0.0))

        out.family(RETENTION_DELETED_TOTAL, "counter", "Artifacts removed by retention")
        for db_id in sorted({db_id for db_id, _ in pairs} | set(counted.deleted)):
            out.sample(RETENTION_DELETED_TOTAL, labels(database_id=db_id),
                       counted.deleted.get(db_id, 0.0))
        out.family(PACKAGES_TOTAL, "counter", "Finished packages by outcome")
        for status in OUTCOMES:
            out.sample(PACKAGES_TOTAL, labels(status=status), counted.packages.get(status, 0.0))
        out.family(NOTIFICATIONS_TOTAL, "counter", "Notifications by channel and outcome")
        for channel, status, value in notification_counts(session, self.settings.notifications):
            out.sample(NOTIFICATIONS_TOTAL, labels(channel=channel, status=status), value)
        write_verify(session, (db.id for db in databases), out)
        self._gauges(session, databases, out)

    def _gauges(self, session: Session, databases: list[Database], out: Exposition) -> None:
        latest = sorted(latest_completed(session))
        out.family("backup_api_backup_size_bytes", "gauge", "Size of the latest completed backup")
        for db_id, at, size_bytes in latest:
            if at is not None:  # completed without a finish time: no latest to tell
                out.sample("backup_api_backup_size_bytes", labels(database_id=db_id),
                           float(size_bytes or 0))
        out.family("backup_api_backup_last_success_timestamp_seconds", "gauge",
                   "Unix time the latest completed backup finished")
        for db_id, at, _ in latest:
            if at is not None:
                out.sample("backup_api_backup_last_success_timestamp_seconds",
                           labels(database_id=db_id), at.timestamp())

        out.family("backup_api_backup_overdue", "gauge",
                   "1 when the last success is older than the schedule interval plus the grace")
        last = {db_id: at for db_id, at, _ in latest}
        now = utcnow()
        for db in databases:
            if db.enabled:
                out.sample("backup_api_backup_overdue", labels(database_id=db.id),
                           float(self._overdue(db, last.get(db.id), now)))

        active = {status: count for status, count in session.execute(
            select(Backup.status, func.count()).where(Backup.status.in_(("pending", "running")))
            .group_by(Backup.status))}
        out.family("backup_api_backups_in_progress", "gauge", "Backups running now, on any worker")
        out.sample("backup_api_backups_in_progress", "", active.get("running", 0))
        out.family("backup_api_backups_pending", "gauge",
                   "Backups waiting for a worker (queued, or to be retried)")
        out.sample("backup_api_backups_pending", "", active.get("pending", 0))

        package = session.execute(select(Package.size_bytes).where(Package.status == "completed")
                                  .order_by(Package.finished_at.desc()).limit(1)).scalar()
        out.family("backup_api_package_size_bytes", "gauge", "Size of the latest completed package")
        if package is not None:
            out.sample("backup_api_package_size_bytes", "", float(package))

    def _overdue(self, db: Database, last: datetime | None, now: datetime) -> bool:
        eff = effective(db, self.settings.global_)
        return is_overdue(eff.schedule, eff.timezone, last, db.created_at, now,
                          self.settings.global_.overdue_grace)

    def _workers(self) -> int | None:
        """Count the Celery workers answering a ping; ``None`` where the broker can't say."""
        if self.celery is None or self.settings.runtime.broker_url.startswith("filesystem://"):
            return None  # kombu's filesystem transport has no broadcast to ping with.
        try:
            return len(self.celery.control.ping(timeout=PING_TIMEOUT) or [])
        except Exception as exc:  # noqa: BLE001 - an unreachable broker means no worker
            log.warning("metrics: could not ping workers: %s", type(exc).__name__)
            return 0
