"""Cluster-wide counters in the metadata DB, so metrics survive restarts and workers."""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shared.models import Counter


def labels_key(labels: Mapping[str, str]) -> str:
    """Return the canonical JSON of ``labels`` (sorted keys), the series identity."""
    return json.dumps(dict(labels), sort_keys=True, separators=(",", ":"))


def increment(session: Session, name: str, labels: Mapping[str, str], by: float = 1) -> None:
    """Add ``by`` to the counter ``name{labels}`` inside the caller's transaction.

    An upsert, so two workers finishing at once both count: PostgreSQL and SQLite
    share the ``ON CONFLICT DO UPDATE`` syntax.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(Counter).values(name=name, labels=labels_key(labels), value=by)
    session.execute(statement.on_conflict_do_update(
        index_elements=[Counter.name, Counter.labels],
        set_={"value": Counter.value + by}))
