"""Cluster-wide counters in the metadata DB (metrics that survive restarts and workers).

Increment inside the transaction that does the counted work, so the count and the
work commit or roll back together.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.models import Counter


def canonical_labels(labels: Mapping[str, str]) -> str:
    """Return ``labels`` as the canonical JSON string that identifies a series."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def increment(session: Session, name: str, labels: Mapping[str, str], by: float = 1) -> None:
    """Add ``by`` to the counter ``name{labels}``, creating it at 0 first if needed.

    One atomic upsert (PostgreSQL and SQLite both support ``ON CONFLICT``), so two
    processes incrementing at once never lose an increment.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Counter).values(name=name, labels=canonical_labels(labels), value=by)
    session.execute(statement.on_conflict_do_update(
        index_elements=[Counter.name, Counter.labels],
        set_={"value": Counter.value + statement.excluded.value},
    ))


def read(session: Session, name: str) -> dict[str, float]:
    """Return ``{canonical labels: value}`` of every series of ``name``."""
    rows = session.execute(select(Counter.labels, Counter.value).where(Counter.name == name))
    return {labels: value for labels, value in rows}


def read_series(session: Session, names: list[str]) -> list[tuple[str, dict[str, str], float]]:
    """Return every series of ``names`` as (name, labels, value), for the metrics scrape."""
    rows = session.execute(select(Counter.name, Counter.labels, Counter.value)
                           .where(Counter.name.in_(names)))
    return [(name, json.loads(labels), value) for name, labels, value in rows]


def raise_to(session: Session, name: str, labels: Mapping[str, str], value: float) -> None:
    """Set the series ``name{labels}`` to ``value`` unless it already holds more.

    For gauges that only move forward (the time of the latest success), kept beside the
    counters so that they too are cluster-wide and outlive the rows they were read from.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Counter).values(name=name, labels=canonical_labels(labels), value=value)
    # Two arguments: GREATEST in PostgreSQL, the scalar max() in SQLite.
    larger = func.greatest if dialect == "postgresql" else func.max
    session.execute(statement.on_conflict_do_update(
        index_elements=[Counter.name, Counter.labels],
        set_={"value": larger(Counter.value, statement.excluded.value)},
    ))
