"""What the beat announces, on a real metadata DB (PostgreSQL and SQLite) to a real HTTP
receiver: ``backup_overdue`` once per overdue episode, and a scheduled run it had to skip."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.context import Context
from shared.jobs import new_backup
from shared.models import Backup, Database
from shared.notify import drain
from tests.contexts import METADATA_DBS, make_context
from tests.receivers import HttpReceiver
from worker.beat.jobs import backup_jobs
from worker.beat.overdue import announce_overdue
from worker.beat.scheduler import fire_batch


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture(params=METADATA_DBS)
def overdue_ctx(request: pytest.FixtureRequest, tmp_path: Path,
                hook: HttpReceiver) -> Context:
    context = make_context(request, tmp_path, f"""
global:
  schedule: "0 2 * * *"
  overdue_grace: 3600
notifications:
  - {{type: webhook, url: "{hook.url}", events: [backup_overdue, backup_failed]}}
""")
    registered = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    with context.db.session() as session:
        for db_id, enabled in (("shop", True), ("paused", False)):
            session.add(Database(id=db_id, name=db_id, engine="postgres", host="localhost",
                                 port=5432, database_name=db_id, options={}, enabled=enabled,
                                 created_at=registered, updated_at=registered))
    return context


def test_an_overdue_database_is_announced_once_per_episode(overdue_ctx: Context,
                                                           hook: HttpReceiver) -> None:
    ctx = overdue_ctx
    # Registered at 12:00, first slot 02:00 next day, the one after at 02:00 the day
    # after: with an hour's grace it is overdue from Nov 2 02:00 + 1 day + 1 h.
    assert announce_overdue(ctx, datetime(2026, 11, 2, 3, 0, tzinfo=UTC)) == []
    late = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    assert announce_overdue(ctx, late) == ["shop"]  # not "paused": disabled
    assert announce_overdue(ctx, late + timedelta(minutes=1)) == []
    assert announce_overdue(ctx, late + timedelta(days=3)) == []
    assert drain(30)
    (first,) = hook.wait(1)
    body = first.json()
    assert body["event"] == "backup_overdue" and body["database_id"] == "shop"
    assert body["last_success_at"] is None and body["registered_at"] == "2026-11-01T12:00:00Z"
    assert "since it was registered" in body["summary"]

    # A success ends the episode; lateness after it is a new one, announced once.
    with ctx.db.session() as session:
        session.add(Backup(id=str(uuid.uuid4()), database_id="shop", engine="postgres",
                           status="completed", trigger="schedule", compression="gzip",
                           storage="local", finished_at=datetime(2026, 11, 7, 2, 5, tzinfo=UTC)))
    assert announce_overdue(ctx, datetime(2026, 11, 7, 12, 0, tzinfo=UTC)) == []
    assert announce_overdue(ctx, datetime(2026, 11, 9, 12, 0, tzinfo=UTC)) == ["shop"]
    assert announce_overdue(ctx, datetime(2026, 11, 9, 12, 1, tzinfo=UTC)) == []
    assert drain(30)
    second = hook.wait(2)[1].json()
    assert second["last_success_at"] == "2026-11-07T02:05:00Z"
    assert len(hook.requests) == 2


def test_a_scheduled_run_skipped_because_the_last_one_still_runs_is_announced(
        overdue_ctx: Context, hook: HttpReceiver) -> None:
    ctx = overdue_ctx
    with ctx.db.session() as session:
        shop = session.get(Database, "shop")
        assert shop is not None
        session.add(new_backup(ctx, shop, "manual"))  # still pending when the slot comes
    with ctx.db.session() as session:
        (job,) = [job for job in backup_jobs(ctx, session, lambda *_: None)
                  if job.key == "backup:shop"]
    slot = datetime(2026, 11, 5, 2, 0, tzinfo=UTC)
    assert fire_batch(ctx, [(job, slot)], slot) == 1
    assert drain(30)
    (request,) = hook.wait(1)
    body = request.json()
    assert (body["event"], body["database_id"], body["trigger"]) == (
        "backup_failed", "shop", "schedule")
    assert body["error"].startswith("skipped the scheduled run of 2026-11-05 02:00 UTC: backup ")
