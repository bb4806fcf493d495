"""Apply retention: plan with ``shared.retention.policy``, then delete artifacts and rows.

Backup retention is used after each completed backup, by the periodic ``retention.run`` task, and by
``POST /retention/run``. Backups of a database that no longer exists are left alone:
whoever deleted the database chose to keep them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Select, delete, select

from shared.catalog import effective
from shared.config import GlobalSettings
from shared.context import Context
from shared.errors import StorageError
from shared.metrics import counters
from shared.models import Backup, Database, Package, utcnow
from shared.retention.policy import Candidate, Expired, Policy, explain, packages_to_delete

log = logging.getLogger(__name__)

DELETED_METRIC = "backup_api_retention_deleted_total"
FINISHED = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Removal:
    """One backup retention deletes (or would delete, or keeps), and why."""

    backup_id: str
    database_id: str
    status: str
    created_at: datetime
    storage_key: str | None
    reason: str
    # The PostgreSQL globals artifact beside the dump (options.globals), deleted with it.
    globals_key: str | None = None


@dataclass
class Outcome:
    removals: list[Removal] = field(default_factory=list)
    errors: list[tuple[Removal, str]] = field(default_factory=list)


@dataclass
class Review:
    """Every finished backup retention looked at: what goes, and what stays and why."""

    removals: list[Removal] = field(default_factory=list)
    kept: list[Removal] = field(default_factory=list)


def plan(ctx: Context, database_ids: Iterable[str] | None = None,
         now: datetime | None = None) -> list[Removal]:
    """Return what retention would delete now, database by database."""
    return review(ctx, database_ids, now).removals


def review(ctx: Context, database_ids: Iterable[str] | None = None,
           now: datetime | None = None) -> Review:
    """Decide on every finished backup now: the removals, and the kept ones with their rule."""
    now = now or utcnow()
    result = Review()
    with ctx.db.session() as session:
        query = select(Database).order_by(Database.id)
        if database_ids is not None:
            query = query.where(Database.id.in_(list(database_ids)))
        for database in session.scalars(query):
            policy = policy_of(database, ctx.settings.global_)
            rows = {row.id: row for row in session.scalars(finished_backups(database.id))}
            candidates = [Candidate(r.id, r.status, r.created_at) for r in rows.values()]
            for decision in explain(candidates, policy, now):
                row = rows[decision.id]
                item = Removal(row.id, row.database_id, row.status, row.created_at,
                               row.storage_key, decision.reason, row.globals_key)
                (result.kept if decision.keep else result.removals).append(item)
    return result


def policy_of(database: Database, defaults: GlobalSettings) -> Policy:
    """Return the retention policy of ``database``: its overrides, else the global values."""
    eff = effective(database, defaults)
    return Policy(eff.retention_days, eff.max_backups, eff.min_backups,
                  keep_daily=eff.keep_daily, keep_weekly=eff.keep_weekly,
                  keep_monthly=eff.keep_monthly, keep_yearly=eff.keep_yearly,
                  timezone=eff.timezone)


def finished_backups(database_id: str) -> Select[Backup]:
    """Return the query of one database's finished backups, all retention decides on.

    It reads that database's rows only, through ``ix_backups_database_created``
    (``bench/many_backups.py`` shows the plan at 100,000 rows).
    """
    return select(Backup).where(Backup.database_id == database_id,
                                Backup.status.in_(FINISHED))


def apply(ctx: Context, removals: Iterable[Removal]) -> Outcome:
    """Delete each backup's artifact and sidecar, then its row; count what went.

    The row is deleted only if it is still in the planned status, and the counter is
    incremented in that same transaction, so two concurrent runs count a deletion once.
    An artifact that cannot be deleted keeps its row, to be retried on the next run.
    """
    outcome = Outcome()
    for removal in removals:
        if removal.storage_key or removal.globals_key:
            try:
                # The globals first: a failure then leaves the row, and both keys, to retry.
                if removal.globals_key:
                    ctx.storage.delete(removal.globals_key)
                if removal.storage_key:
                    ctx.storage.delete_artifact(removal.storage_key)
            except StorageError as exc:
                log.error("retention could not delete %s: %s", removal.storage_key, exc.message)
                outcome.errors.append((removal, exc.message))
                continue
        with ctx.db.session() as session:
            deleted = cast(CursorResult[Any], session.execute(delete(Backup).where(
                Backup.id == removal.backup_id, Backup.status == removal.status))).rowcount
            if deleted and removal.storage_key:
                counters.increment(session, DELETED_METRIC,
                                   {"database_id": removal.database_id})
        if deleted:
            log.info("retention deleted backup %s of %s: %s", removal.backup_id,
                     removal.database_id, removal.reason)
            outcome.removals.append(removal)
    return outcome


def run_retention(ctx: Context, database_ids: Iterable[str] | None = None) -> Outcome:
    """Plan and apply retention now (for every database unless ``database_ids``)."""
    return apply(ctx, plan(ctx, database_ids))


def apply_package_retention(ctx: Context, now: datetime | None = None,
                            dry_run: bool = False) -> list[Expired]:
    """Delete the packages retention no longer keeps (artifact, sidecar, row); return them.

    Like backups, each package is its own step: the artifact goes first, then the row
    in a transaction of its own. If deleting the artifact fails, the row stays (and is
    tried again on the next run), so a storage error never leaves an artifact without
    its row, nor rolls back rows whose artifacts are already gone.
    """
    conf = ctx.settings.package
    with ctx.db.session() as session:
        rows = {row.id: row for row in session.scalars(select(Package).where(
            Package.status.in_(FINISHED)))}
    expired = packages_to_delete(list(rows.values()), now or utcnow(), conf.retention_days,
                                 conf.max_packages)
    if dry_run:
        return expired
    removed: list[Expired] = []
    for item in expired:
        row = rows[item.package_id]
        if row.storage_key:
            try:
                ctx.storage.delete_artifact(row.storage_key)
            except StorageError as exc:
                log.error("retention could not delete package %s: %s", row.storage_key,
                          exc.message)
                continue
        with ctx.db.session() as session:
            # A statement, not session.delete: a concurrent run may have removed it.
            session.execute(delete(Package).where(Package.id == row.id))
        log.info("retention removed package %s: %s", row.id, item.reason)
        removed.append(item)
    return removed
