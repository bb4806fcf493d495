"""What a ``/metrics`` scrape reads from the metadata DB, aggregated as it is read."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, String, select, text
from sqlalchemy.orm import Session

from shared.metrics.record import (
    BACKUPS_TOTAL,
    DURATION,
    DURATION_BUCKETS,
    PACKAGES_TOTAL,
    RETENTION_DELETED_TOTAL,
    format_le,
)
from shared.models import Counter, UTCDateTime

# The bucket bounds as the histogram's le labels read.
LES = [format_le(bound) for bound in DURATION_BUCKETS]

# Each database's latest completed backup: when it finished and its size (the largest,
# should two finish together). A GROUP BY would read all 100,000 rows; this walks the
# distinct database ids through ix_backups_status_database_finished (0009) and takes
# one index entry per database, so it costs 1,000 lookups, whatever the history.
_LATEST_COMPLETED = text("""
WITH RECURSIVE done(database_id) AS (
    SELECT min(database_id) FROM backups WHERE status = 'completed'
    UNION ALL
    SELECT (SELECT min(b.database_id) FROM backups b
            WHERE b.status = 'completed' AND b.database_id > done.database_id)
    FROM done WHERE done.database_id IS NOT NULL
), latest(database_id, at) AS (
    SELECT database_id, (SELECT max(b.finished_at) FROM backups b
                         WHERE b.status = 'completed' AND b.database_id = done.database_id)
    FROM done WHERE database_id IS NOT NULL
)
SELECT database_id, at, (SELECT max(b.size_bytes) FROM backups b
                         WHERE b.status = 'completed' AND b.database_id = latest.database_id
                           AND b.finished_at = latest.at) AS size_bytes
FROM latest
""").columns(database_id=String, at=UTCDateTime, size_bytes=BigInteger)


class Counted:
    """The counters table, by series: read in one query, each label set parsed once."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str, str], float] = {}  # (database, engine, status)
        self.buckets: dict[tuple[str, str], dict[str, float]] = {}  # (database, engine): le
        self.sums: dict[tuple[str, str], float] = {}
        self.deleted: dict[str, float] = {}
        self.packages: dict[str, float] = {}

    @classmethod
    def read(cls, session: Session) -> Counted:
        counted = cls()
        rows = session.execute(select(Counter.name, Counter.labels, Counter.value).where(
            Counter.name.in_([BACKUPS_TOTAL, PACKAGES_TOTAL, RETENTION_DELETED_TOTAL,
                              DURATION + "_bucket", DURATION + "_sum"])))
        for name, labels_json, value in rows:
            labels = _labels(labels_json)
            if name == BACKUPS_TOTAL:
                counted.totals[labels["database_id"], labels["engine"], labels["status"]] = value
            elif name == DURATION + "_bucket":
                counted.buckets.setdefault((labels["database_id"], labels["engine"]), {})[
                    labels["le"]] = value
            elif name == DURATION + "_sum":
                counted.sums[labels["database_id"], labels["engine"]] = value
            elif name == RETENTION_DELETED_TOTAL:
                counted.deleted[labels["database_id"]] = value
            else:
                counted.packages[labels["status"]] = value
        return counted


# The labels of a series never change, and a scrape reads 20,000 of them: parse each once.
@lru_cache(maxsize=1 << 18)
def _labels(text: str) -> dict[str, Any]:
    labels: dict[str, Any] = json.loads(text)
    return labels


def latest_completed(session: Session) -> list[tuple[str, datetime | None, int | None]]:
    """Return (database id, finished at, size) of each database's latest completed backup."""
    return [(db_id, at, size) for db_id, at, size in session.execute(_LATEST_COMPLETED)]
