"""The beat scheduler: every ``beat_interval`` seconds, fire due jobs and reap dead backups.

Why not RedBeat or django-celery-beat: both keep their own copy of the schedule
(Redis keys, or ``PeriodicTask`` rows) that must be kept in sync with our databases
table, and neither stops two beats from sending the same run (RedBeat prevents a
second beat with a Redis lock, which does not exist with the embedded filesystem
broker; django-celery-beat documents that only one beat may run). Here the databases
table *is* the schedule, read on every pass, and exactly-once comes from the
metadata DB itself:

1. per job, a transaction takes a lock (``pg_advisory_xact_lock`` on PostgreSQL; on
   SQLite the file's single writer) and advances ``schedule_slots.last_slot`` to the
   due slot only if it is newer;
2. in that same transaction the work is recorded (a pending backup with
   ``scheduled_for = slot``, unique per database and slot);
3. after commit, the backup's id is enqueued.

Two beats therefore record one backup per slot, and a crash between 2 and 3 leaves
a pending row that is enqueued again later (worker/reaper.py), never a doubled run.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, cast

from celery.beat import Scheduler
from sqlalchemy import CursorResult, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.context import Context, current
from shared.jobs import Send
from shared.models import ScheduleSlot, utcnow
from worker.beat.jobs import JOB_SOURCES, Job
from worker.beat.reaper import reap, requeue
from worker.beat.slots import due_slot

log = logging.getLogger(__name__)



def run_pass(ctx: Context, send: Send, now: datetime | None = None) -> None:
    """Fire every due job once, fail backups whose worker died, re-send lost ones."""
    now = now or utcnow()
    try:
        with ctx.db.session() as session:
            jobs = [job for source in JOB_SOURCES for job in source(ctx, session, send)]
    except Exception:  # noqa: BLE001 - the metadata DB may be back on the next pass
        log.exception("could not read the schedules")
        jobs = []
    for job in jobs:
        try:
            fire_if_due(ctx, job, now)
        except Exception:  # noqa: BLE001 - one bad job must not stop the others
            log.exception("scheduling %s failed", job.key)
    try:
        reap(ctx, now)
        requeue(ctx, now, send)
    except Exception:  # noqa: BLE001
        log.exception("reaping stale backups failed")


def fire_if_due(ctx: Context, job: Job, now: datetime) -> bool:
    """Claim ``job``'s due slot and record its work in one transaction; True if fired."""
    try:
        with ctx.db.session() as session:
            _lock(session, job.key)
            state = session.get(ScheduleSlot, job.key)
            slot = due_slot(job.cron, job.timezone, now,
                            state.last_slot if state else None, job.anchor)
            if slot is None:
                return False
            if state is None:
                session.add(ScheduleSlot(job=job.key, last_slot=slot, updated_at=now))
                session.flush()
            elif not cast(CursorResult[Any], session.execute(
                update(ScheduleSlot).where(ScheduleSlot.job == job.key,
                                           ScheduleSlot.last_slot < slot)
                .values(last_slot=slot, updated_at=now)
            )).rowcount:
                return False
            after_commit = job.fire(session, slot)
    except IntegrityError:
        # Another beat claimed the slot (or recorded its backup) first.
        log.info("%s: slot already taken by another scheduler", job.key)
        return False
    log.info("%s: fired for slot %s", job.key, slot.isoformat())
    if after_commit is not None:
        after_commit()
    return True


def _lock(session: Session, key: str) -> None:
    """Serialize beats on one job (PostgreSQL); SQLite has a single writer anyway."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                        {"key": f"backup-api:schedule:{key}"})


class DatabaseScheduler(Scheduler):
    """Celery beat scheduler driven by the metadata DB (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._next_pass = 0.0
        super().__init__(*args, **kwargs)
        log.info("DatabaseScheduler started: schedules are read from the metadata DB")

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        if time.monotonic() >= self._next_pass:
            ctx = current()
            self._next_pass = time.monotonic() + ctx.settings.global_.beat_interval
            run_pass(ctx, self._send)
        return max(0.0, min(interval, self._next_pass - time.monotonic()))

    def _send(self, task: str, args: list[str]) -> None:
        self.app.send_task(task, args=args)
