"""Jobs from birth to failure, on PostgreSQL and SQLite: the rows and counters a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, update

from shared.context import Context
from shared.jobs import (
    BACKUP_TASK,
    PACKAGE_TASK,
    add_failed_backup,
    enqueue,
    fail_backup,
    fail_package,
    new_backup,
    new_package,
)
from shared.metrics.counters import read
from shared.metrics.record import BACKUPS_TOTAL, PACKAGES_TOTAL
from shared.models import Backup, Database, Package, utcnow
from tests.contexts import METADATA_DBS, make_context

CONFIG = "global:\n  compression: zstd\npackage-conf:\n  compression: tar.gz\n"
FAILED = json.dumps({"database_id": "shop", "engine": "postgres", "status": "failed"},
                    separators=(",", ":"))


@pytest.fixture(params=METADATA_DBS)
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Context:
    context = make_context(request, tmp_path, CONFIG)
    with context.db.session() as session:
        session.add(Database(id="shop", name="shop", engine="postgres", host="localhost",
                             port=5432, database_name="shop", options={}))
    return context


def _pending_backup(ctx: Context) -> Backup:
    with ctx.db.session() as session:
        database = session.get(Database, "shop")
        assert database is not None
        backup = new_backup(ctx, database, "manual")
        session.add(backup)
    return backup


def _backup(ctx: Context, backup_id: str) -> Backup:
    with ctx.db.session() as session:
        row = session.get(Backup, backup_id)
        assert row is not None
        return row


def _count(ctx: Context, name: str) -> dict[str, float]:
    with ctx.db.session() as session:
        return read(session, name)


def test_a_new_backup_takes_the_effective_settings(ctx: Context) -> None:
    backup = _backup(ctx, _pending_backup(ctx).id)
    assert (backup.status, backup.engine, backup.compression, backup.storage) == (
        "pending", "postgres", "zstd", "local")


def test_a_failure_clears_the_artifact_and_counts_once(ctx: Context) -> None:
    backup = _pending_backup(ctx)
    with ctx.db.session() as session:
        session.execute(update(Backup).where(Backup.id == backup.id).values(
            status="running", storage_key="shop/x.dump.zst", size_bytes=3))
    with ctx.db.session() as session:
        assert fail_backup(session, backup.id, "dump failed", only_if=("running",),
                           duration=2.5)
    # A second giver-up (the reaper, say) finds it no longer running: nothing more.
    with ctx.db.session() as session:
        assert not fail_backup(session, backup.id, "no heartbeat", only_if=("running",))
    row = _backup(ctx, backup.id)
    assert (row.status, row.error, row.storage_key, row.size_bytes) == (
        "failed", "dump failed", None, None)
    assert row.finished_at is not None
    assert _count(ctx, BACKUPS_TOTAL) == {FAILED: 1.0}


def test_a_failure_may_be_conditioned_on_any_column(ctx: Context) -> None:
    backup = _pending_backup(ctx)
    with ctx.db.session() as session:
        assert not fail_backup(session, backup.id, "stale", only_if=Backup.created_at < (
            backup.created_at.replace(year=2000)))
    assert _backup(ctx, backup.id).status == "pending"
    assert _count(ctx, BACKUPS_TOTAL) == {}


def test_a_skipped_slot_is_a_counted_failure(ctx: Context) -> None:
    with ctx.db.session() as session:
        database = session.get(Database, "shop")
        assert database is not None
        add_failed_backup(session, new_backup(ctx, database, "schedule",
                                              scheduled_for=utcnow()), "skipped: busy")
    with ctx.db.session() as session:
        rows = list(session.scalars(select(Backup)))
    assert [(r.status, r.trigger, r.error) for r in rows] == [
        ("failed", "schedule", "skipped: busy")]
    assert _count(ctx, BACKUPS_TOTAL) == {FAILED: 1.0}


def test_a_refused_message_fails_the_pending_row(ctx: Context) -> None:
    backup = _pending_backup(ctx)

    def refuse(task: str, args: list[str]) -> None:
        raise ConnectionError("connection refused")

    assert not enqueue(ctx, refuse, BACKUP_TASK, backup.id, "backup", fail_backup)
    row = _backup(ctx, backup.id)
    assert (row.status, row.error) == (
        "failed", "could not enqueue the backup: the broker is unreachable")
    assert _count(ctx, BACKUPS_TOTAL) == {FAILED: 1.0}


def test_a_sent_message_leaves_the_row_pending(ctx: Context) -> None:
    backup = _pending_backup(ctx)
    sent: list[tuple[str, list[str]]] = []
    assert enqueue(ctx, lambda task, args: sent.append((task, args)), BACKUP_TASK, backup.id,
                   "backup", fail_backup)
    assert sent == [(BACKUP_TASK, [backup.id])]
    assert _backup(ctx, backup.id).status == "pending"


def test_a_refused_package_is_failed_and_counted(ctx: Context) -> None:
    with ctx.db.session() as session:
        package = new_package(ctx, database_ids=["shop", "shop"])
        session.add(package)

    def refuse(task: str, args: list[str]) -> None:
        raise ConnectionError("connection refused")

    assert not enqueue(ctx, refuse, PACKAGE_TASK, package.id, "package", fail_package)
    with ctx.db.session() as session:
        row = session.get(Package, package.id)
        assert row is not None
        assert (row.status, row.format, row.database_ids, row.error) == (
            "failed", "tar.gz", ["shop"],
            "could not enqueue the package: the broker is unreachable")
    assert _count(ctx, PACKAGES_TOTAL) == {'{"status":"failed"}': 1.0}
