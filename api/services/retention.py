"""Run retention now, or show what it would delete."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from api.services import ctx
from api.services.audit import audit
from shared.errors import NotFound
from shared.models import Database
from shared.retention.apply import Outcome, apply, review


def run(dry_run: bool, database_id: str | None) -> dict[str, Any]:
    """Plan retention (for one database or all); apply it unless ``dry_run``."""
    context = ctx()
    ids = None
    if database_id is not None:
        with context.db.session() as session:
            if session.get(Database, database_id) is None:
                raise NotFound(f"database {database_id!r} not found")
        ids = [database_id]
    decided = review(context, ids)
    outcome = Outcome(removals=decided.removals) if dry_run else apply(context, decided.removals)
    if not dry_run:
        audit("retention.run", database_id=database_id,
              deleted_backups=[r.backup_id for r in outcome.removals],
              failed_backups=[r.backup_id for r, _ in outcome.errors])
    return {
        "dry_run": dry_run,
        "count": len(outcome.removals),
        "backups": [asdict(r) for r in outcome.removals],
        "errors": [{**asdict(r), "error": message} for r, message in outcome.errors],
        # Only a preview says why each remaining backup stays ("kept: monthly 2026-10").
        **({"kept": [asdict(r) for r in decided.kept]} if dry_run else {}),
    }
