"""Cluster-wide monotonic counters kept in the metadata DB (``counters`` table).

Workers on several hosts add to the same rows, so a counter is right whichever
process counted and survives restarts. Increment inside the transaction that
records the outcome: the count and the row it counts commit (or roll back) together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.models import Counter


def label_key(labels: Mapping[str, str]) -> str:
    """Return the canonical JSON of ``labels`` (sorted keys) that identifies a series."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def increment(session: Session, name: str, labels: Mapping[str, str], by: float = 1) -> None:
    """Add ``by`` to the series (``name``, ``labels``), creating it at 0 first.

    One atomic upsert, so concurrent workers never lose an increment.
    """
    values = {"name": name, "labels": label_key(labels), "value": float(by)}
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - the two we support
        raise NotImplementedError(f"counters on {dialect}")
    # Both dialects spell the upsert the same way (INSERT ... ON CONFLICT DO UPDATE).
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(Counter).values(**values)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[Counter.name, Counter.labels],
        set_={"value": Counter.value + stmt.excluded.value},
    ))


def read(session: Session, names: list[str]) -> list[tuple[str, dict[str, str], float]]:
    """Return every series of ``names`` as (name, labels, value)."""
    rows = session.execute(select(Counter.name, Counter.labels, Counter.value)
                           .where(Counter.name.in_(names)))
    return [(name, json.loads(labels), value) for name, labels, value in rows]
