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
    interrupt_backup,
    new_backup,
    new_package,
)
from shared.leftovers import discard, retry_leftovers
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


def _claimed(ctx: Context, backup: Backup, attempt: int = 1) -> Backup:
    """``backup`` as a worker's claim leaves it: running, with a key and a heartbeat."""
    with ctx.db.session() as session:
        session.execute(update(Backup).where(Backup.id == backup.id).values(
            status="running", attempt=attempt, worker="w1", started_at=utcnow(),
            heartbeat_at=utcnow(), storage_key="shop/partial.dump.zst"))
    return _backup(ctx, backup.id)


def test_an_interrupted_backup_goes_back_to_pending_as_its_next_attempt(ctx: Context) -> None:
    backup = _claimed(ctx, _pending_backup(ctx))
    running = Backup.status == "running"
    with ctx.db.session() as session:
        outcome = interrupt_backup(session, backup, "worker w1 stopped responding",
                                   max_attempts=2, only_if=running, now=utcnow())
    assert outcome == "retried"
    row = _backup(ctx, backup.id)
    assert (row.status, row.attempt, row.worker, row.storage_key, row.error) == (
        "pending", 2, None, None, None)
    assert row.id == backup.id and row.created_at == backup.created_at
    assert _count(ctx, BACKUPS_TOTAL) == {}  # not an outcome: nothing counted

    # A second beat that saw attempt 1 changes nothing; the new attempt's claim runs.
    with ctx.db.session() as session:
        assert interrupt_backup(session, backup, "late", max_attempts=2,
                                only_if=Backup.status == "pending", now=utcnow()) is None
    assert _backup(ctx, backup.id).attempt == 2


def test_the_last_attempt_fails_saying_how_many_were_made(ctx: Context) -> None:
    backup = _claimed(ctx, _pending_backup(ctx), attempt=2)
    with ctx.db.session() as session:
        outcome = interrupt_backup(session, backup, "worker w1 stopped responding",
                                   max_attempts=2, only_if=Backup.status == "running",
                                   now=utcnow())
    assert outcome == "failed"
    row = _backup(ctx, backup.id)
    assert row.status == "failed" and row.storage_key is None
    assert row.error == "worker w1 stopped responding; gave up after 2 attempts"
    assert _count(ctx, BACKUPS_TOTAL) == {FAILED: 1.0}


def test_a_partial_artifact_the_storage_refuses_is_deleted_later(ctx: Context) -> None:
    """A file where the key's folder should be makes the local storage refuse, as an S3
    endpoint that is down would; once it is a folder again, the leftover goes."""
    root = Path(ctx.storage.root)  # type: ignore[attr-defined]
    root.mkdir(parents=True, exist_ok=True)
    (root / "shop").write_text("in the way")
    assert discard(ctx, "shop/partial.dump") is False
    assert retry_leftovers(ctx) == []  # still refused: kept for the next pass

    (root / "shop").unlink()
    (root / "shop").mkdir()
    partial = root / "shop" / ".tmp-partial.dump.abc"
    partial.write_bytes(b"half a dump")
    assert retry_leftovers(ctx) == ["shop/partial.dump"]
    assert not partial.exists()
    assert retry_leftovers(ctx) == []
