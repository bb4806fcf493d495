"""The beat scheduler: fire due jobs on their slot, to the second, and reap dead backups.

Why not RedBeat or django-celery-beat: both keep their own copy of the schedule
(Redis keys, or ``PeriodicTask`` rows) that must be kept in sync with our databases
table, and neither stops two beats from sending the same run (RedBeat prevents a
second beat with a Redis lock, which does not exist with the embedded filesystem
broker; django-celery-beat documents that only one beat may run). Here the databases
table *is* the schedule, read on every pass, and exactly-once comes from the
metadata DB itself:

1. a transaction advances ``schedule_slots.last_slot`` of each due job to its slot
   only where the stored one is older (one ``INSERT … ON CONFLICT DO UPDATE … WHERE
   … RETURNING`` per batch of jobs: the row lock makes a second beat wait, then find
   the slot taken);
2. in that same transaction the work is recorded (a pending backup with
   ``scheduled_for = slot``, unique per database and slot);
3. after commit, the backup's id is enqueued.

Two beats therefore record one backup per slot, and a crash between 2 and 3 leaves
a pending row that is enqueued again later (worker/reaper.py), never a doubled run.

When: a cron slot (five fields or a macro) always falls on a whole minute, so the beat
wakes at every whole minute and every ``beat_interval`` in between. A schedule
added or changed through the API a second before its slot is read on that slot's
pass, and a slot's backup is recorded and enqueued well under a second after it.
The reaper keeps its own cadence, one run per ``beat_interval``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from celery.beat import Scheduler
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.context import Context, current
from shared.jobs import Send
from shared.models import ScheduleSlot, utcnow
from worker.beat.jobs import JOB_SOURCES, AfterCommit, FireMany, Job
from worker.beat.overdue import announce_overdue
from worker.beat.reaper import reap, requeue
from worker.beat.sending import Batching, CelerySender
from worker.beat.slots import claim_slots, due_slot

log = logging.getLogger(__name__)

# Jobs claimed per transaction: few enough that a second beat waits briefly and the
# first enqueues start early; many enough that 1,000 due jobs take ten commits.
CLAIM_BATCH = 100
# Wake this long after a whole minute, so the clock has passed the slot for sure.
WAKE_MARGIN = 0.05

Due = tuple[Job, datetime]


def run_pass(ctx: Context, send: Send, now: datetime | None = None,
             batching: Batching = nullcontext) -> int:
    """Fire every due job once, as the metadata DB has the jobs now; return how many fired."""
    now = now or utcnow()
    try:
        with ctx.db.session() as session:
            jobs = [job for source in JOB_SOURCES for job in source(ctx, session, send)]
    except Exception:  # noqa: BLE001 - the metadata DB may be back on the next pass
        log.exception("could not read the schedules")
        return 0
    return fire_due(ctx, jobs, now, batching)


def fire_due(ctx: Context, jobs: Sequence[Job], now: datetime,
             batching: Batching = nullcontext) -> int:
    """Fire those of ``jobs`` that are due, in batches; return how many this beat fired.

    The slots are read once for all jobs, so a pass with nothing due costs one query,
    not one transaction per job.
    """
    started = time.perf_counter()
    try:
        with ctx.db.session() as session:
            last = {job: slot for job, slot in
                    session.execute(select(ScheduleSlot.job, ScheduleSlot.last_slot))}
    except Exception:  # noqa: BLE001 - the metadata DB may be back on the next pass
        log.exception("could not read the schedule slots")
        return 0
    due: list[Due] = []
    for job in jobs:
        try:
            slot = due_slot(job.cron, job.timezone, now, last.get(job.key), job.anchor)
        except Exception:  # noqa: BLE001 - one bad job must not stop the others
            log.exception("scheduling %s failed", job.key)
            continue
        if slot is not None:
            due.append((job, slot))
    due.sort(key=lambda item: item[0].key)  # one lock order for every beat: no deadlock
    fired = sum(fire_batch(ctx, due[i:i + CLAIM_BATCH], now, batching)
                for i in range(0, len(due), CLAIM_BATCH))
    if due:
        log.info("scheduler pass: %d jobs, %d due, %d fired by this beat in %.3fs",
                 len(jobs), len(due), fired, time.perf_counter() - started)
    return fired


def fire_batch(ctx: Context, due: Sequence[Due], now: datetime,
               batching: Batching = nullcontext) -> int:
    """Claim the slots of ``due`` and record their work in one transaction, then send
    their messages together; return how many this scheduler fired. If any job fails,
    each is tried alone (one bad job must not stop the others)."""
    if not due:
        return 0
    try:
        with ctx.db.session() as session:
            claimed = claim_slots(session, {job.key: slot for job, slot in due}, now)
            mine = [(job, slot) for job, slot in due if job.key in claimed]
            actions = _record(session, mine)
    except Exception:  # noqa: BLE001 - retried job by job below
        log.warning("claiming %d slots together failed; trying each alone", len(due),
                    exc_info=True)
        return sum(_fire_alone(ctx, job, slot, now) for job, slot in due)
    for job, slot in mine:
        log.info("%s: fired for slot %s", job.key, slot.isoformat())
    todo = [action for action in actions if action is not None]
    try:
        with batching():
            for action in todo:
                action()
    except Exception:  # noqa: BLE001 - the broker refused the batch: send one by one
        log.warning("sending %d messages together failed; sending each alone", len(todo),
                    exc_info=True)
        for action in todo:
            action()  # enqueue: a message the broker still refuses fails its row
    return len(claimed)


def _record(session: Session, due: list[Due]) -> list[AfterCommit]:
    """Record the work of claimed slots: together where the jobs share a ``fire_many``."""
    together: dict[FireMany, list[Due]] = {}
    actions: list[AfterCommit] = []
    for job, slot in due:
        if job.fire_many is None:
            actions.append(job.fire(session, slot))
        else:
            together.setdefault(job.fire_many, []).append((job, slot))
    for fire_many, jobs in together.items():
        actions += fire_many(session, jobs)
    return actions


def fire_if_due(ctx: Context, job: Job, now: datetime) -> bool:
    """Claim ``job``'s due slot and record its work in one transaction; True if fired."""
    with ctx.db.session() as session:
        last = session.get(ScheduleSlot, job.key)
    slot = due_slot(job.cron, job.timezone, now, last.last_slot if last else None, job.anchor)
    return slot is not None and _fire_alone(ctx, job, slot, now)


def _fire_alone(ctx: Context, job: Job, slot: datetime, now: datetime) -> bool:
    try:
        with ctx.db.session() as session:
            if not claim_slots(session, {job.key: slot}, now):
                return False
            after_commit = job.fire(session, slot)
    except IntegrityError:
        log.info("%s: slot already taken by another scheduler", job.key)
        return False
    except Exception:  # noqa: BLE001 - one bad job must not stop the others
        log.exception("scheduling %s failed", job.key)
        return False
    log.info("%s: fired for slot %s", job.key, slot.isoformat())
    if after_commit is not None:
        after_commit()
    return True




def seconds_to_next_pass(now: datetime, beat_interval: float) -> float:
    """Return how long to sleep: until just past the next whole minute (where every cron
    slot falls), or ``beat_interval`` if sooner (a backdated row, a missed slot)."""
    minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return min(float(beat_interval), (minute - now).total_seconds() + WAKE_MARGIN)


class DatabaseScheduler(Scheduler):
    """Celery beat scheduler driven by the metadata DB (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._next_pass = 0.0
        self._next_reap = 0.0
        super().__init__(*args, **kwargs)
        self._sender = CelerySender(self.app)
        log.info("DatabaseScheduler started: schedules are read from the metadata DB")

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        ctx = current()
        beat_interval = ctx.settings.global_.beat_interval
        if time.monotonic() >= self._next_pass:
            run_pass(ctx, self._sender, batching=self._sender.batch)
            self._next_pass = time.monotonic() + seconds_to_next_pass(utcnow(), beat_interval)
        if time.monotonic() >= self._next_reap:
            self._next_reap = time.monotonic() + beat_interval
            _reap(ctx, self._sender)
            announce_overdue(ctx, utcnow())  # only when a channel wants backup_overdue
        now = time.monotonic()
        return max(0.0, min(interval, self._next_pass - now, self._next_reap - now))



def _reap(ctx: Context, send: Send) -> None:
    """Retry or fail backups whose worker died, re-send lost ones (worker/beat/reaper.py)."""
    now = utcnow()
    try:
        reap(ctx, now, send)
        requeue(ctx, now, send)
    except Exception:  # noqa: BLE001 - the metadata DB may be back on the next run
        log.exception("reaping stale backups failed")
