"""Metric names of the contract and how outcomes are recorded into the counters table.

Workers never keep per-process ``prometheus_client`` counters (they would be wrong
with two workers and reset at each restart). They add to rows of the metadata DB in
the transaction that records the outcome (``shared.metrics.counters.increment``; packages and
retention count ``PACKAGES_TOTAL{status}`` and ``RETENTION_DELETED_TOTAL{database_id}``
that way); the API turns the rows into metrics at scrape time (``api/prometheus.py``).

The duration histogram is kept as cumulative bucket counters, the way Prometheus
exposes it: ``..._bucket{le=...}``, ``..._sum`` and ``..._count`` rows. It counts
completed backups only: how long a good backup takes is what capacity planning and
the time limit need, while a failure that stops after a second would drag the
quantiles down; failures are counted by ``backup_api_backups_total{status="failed"}``.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy.orm import Session

from shared.metrics.counters import increment, raise_to

PREFIX = "backup_api_"
BACKUPS_TOTAL = "backup_api_backups_total"
PACKAGES_TOTAL = "backup_api_packages_total"
RETENTION_DELETED_TOTAL = "backup_api_retention_deleted_total"
# {channel, status}: sent or failed, counted by shared/notify once per delivery.
NOTIFICATIONS_TOTAL = "backup_api_notifications_total"
DURATION = "backup_api_backup_duration_seconds"

# From one second to a day: small databases dump in seconds, large ones in hours.
DURATION_BUCKETS: tuple[float, ...] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 21600, 43200, 86400, math.inf,
)
# A cancelled backup (POST /backups/{id}/cancel) is neither a success nor a failure.
OUTCOMES = ("completed", "failed", "cancelled")


# Verifications (POST /backups/{id}/verify, verify.schedule) by outcome, and when each
# database's backups last verified ok (a gauge kept in the counters table).
VERIFY_TOTAL = "backup_api_verify_total"
LAST_VERIFIED = "backup_api_backup_last_verified_timestamp_seconds"
VERIFY_STATUSES = ("ok", "corrupt", "restore_failed")


def record_verify(session: Session, database_id: str, status: str, at: datetime) -> None:
    """Count one finished verification; an ``ok`` one also moves the last-verified time."""
    increment(session, VERIFY_TOTAL, {"database_id": database_id, "status": status})
    if status == "ok":
        raise_to(session, LAST_VERIFIED, {"database_id": database_id}, at.timestamp())


def format_le(bound: float) -> str:
    """Return a bucket bound as Prometheus writes it (``5.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def record_backup(session: Session, database_id: str, engine: str, status: str,
                  duration_seconds: float | None) -> None:
    """Count one finished backup; a completed one also goes into the duration histogram."""
    increment(session, BACKUPS_TOTAL,
              {"database_id": database_id, "engine": engine, "status": status})
    if status != "completed" or duration_seconds is None:
        return
    labels = {"database_id": database_id, "engine": engine}
    # Same order in every transaction, so two workers never deadlock on these rows.
    for bound in DURATION_BUCKETS:
        if duration_seconds <= bound:
            increment(session, DURATION + "_bucket", {**labels, "le": format_le(bound)})
    increment(session, DURATION + "_count", labels)
    increment(session, DURATION + "_sum", labels, by=duration_seconds)
