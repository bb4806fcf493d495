"""The verification families of ``/metrics``: outcomes by database, last success by database.

Both are read from the counters table (``shared.metrics.record.record_verify``), one
query for the lot. ``backup_api_verify_total`` starts at 0 for every registered
database and status, so ``increase()`` sees a first failure; the last-verified gauge
has a sample only for databases whose backups verified ``ok`` at least once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.metrics_text import Exposition, labels
from shared.metrics.record import LAST_VERIFIED, VERIFY_STATUSES, VERIFY_TOTAL
from shared.models import Counter


def write_verify(session: Session, database_ids: Iterable[str], out: Exposition) -> None:
    """Write both families for ``database_ids`` plus any database that counted before."""
    totals: dict[tuple[str, str], float] = {}
    last: dict[str, float] = {}
    for name, labels_json, value in session.execute(
            select(Counter.name, Counter.labels, Counter.value)
            .where(Counter.name.in_([VERIFY_TOTAL, LAST_VERIFIED]))):
        series = json.loads(labels_json)
        if name == VERIFY_TOTAL:
            totals[series["database_id"], series["status"]] = value
        else:
            last[series["database_id"]] = value
    out.family(VERIFY_TOTAL, "counter", "Finished verifications of backups by outcome")
    for db_id in sorted(set(database_ids) | {db_id for db_id, _ in totals}):
        for status in VERIFY_STATUSES:
            out.sample(VERIFY_TOTAL, labels(database_id=db_id, status=status),
                       totals.get((db_id, status), 0.0))
    out.family(LAST_VERIFIED, "gauge",
               "Unix time a verification of the database's backups last ended ok")
    for db_id in sorted(last):
        out.sample(LAST_VERIFIED, labels(database_id=db_id), last[db_id])
