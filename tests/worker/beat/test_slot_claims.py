"""Slot claims under contention, on PostgreSQL and SQLite: many schedulers, one firing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from shared.context import Context
from tests.contexts import METADATA_DBS, make_context
from worker.beat.jobs import AfterCommit, Job
from worker.beat.scheduler import (
    CLAIM_BATCH,
    WAKE_MARGIN,
    fire_due,
    fire_if_due,
    seconds_to_next_pass,
)

NOW = datetime.now(UTC).replace(second=30, microsecond=0)


@pytest.fixture(params=METADATA_DBS)
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Context:
    return make_context(request, tmp_path)


def _counting_job(fired: list[datetime], anchor: datetime | None = None) -> Job:
    lock = threading.Lock()

    def fire(_: Session, slot: datetime) -> AfterCommit:
        with lock:
            fired.append(slot)
        return None

    return Job(key="test:job", cron="* * * * *", timezone="UTC", fire=fire, anchor=anchor)


def _race(ctx: Context, job: Job, now: datetime, schedulers: int = 8) -> list[bool]:
    start = threading.Barrier(schedulers)
    results: list[bool] = []

    def scheduler() -> None:
        start.wait()
        results.append(fire_if_due(ctx, job, now))

    threads = [threading.Thread(target=scheduler) for _ in range(schedulers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_racing_schedulers_fire_each_slot_once(ctx: Context) -> None:
    fired: list[datetime] = []
    job = _counting_job(fired)
    assert _race(ctx, job, NOW).count(True) == 1  # first slot: no state row yet
    assert _race(ctx, job, NOW + timedelta(minutes=1)).count(True) == 1  # advancing it
    assert fired == [NOW.replace(second=0), NOW.replace(second=0) + timedelta(minutes=1)]


def test_next_slot_fires_and_downtime_yields_one_catch_up(ctx: Context) -> None:
    fired: list[datetime] = []
    job = _counting_job(fired)
    assert fire_if_due(ctx, job, NOW)
    assert not fire_if_due(ctx, job, NOW + timedelta(seconds=20))
    assert fire_if_due(ctx, job, NOW + timedelta(minutes=1))
    # Down for an hour: the next pass fires the latest slot only, once.
    later = NOW + timedelta(hours=1)
    assert fire_if_due(ctx, job, later)
    assert not fire_if_due(ctx, job, later + timedelta(seconds=5))
    assert fired == [NOW.replace(second=0), NOW.replace(second=0) + timedelta(minutes=1),
                     later.replace(second=0)]


def test_a_job_never_fires_for_slots_before_its_anchor(ctx: Context) -> None:
    fired: list[datetime] = []
    assert not fire_if_due(ctx, _counting_job(fired, anchor=NOW), NOW)
    assert fired == []


def test_racing_passes_fire_each_of_many_jobs_once(ctx: Context) -> None:
    """Beats claim slots in batches (one statement per batch): still one firing per job."""
    fired: list[str] = []
    lock = threading.Lock()

    def job(key: str) -> Job:
        def fire(_: Session, __: datetime) -> AfterCommit:
            with lock:
                fired.append(key)
            return None
        return Job(key=key, cron="* * * * *", timezone="UTC", fire=fire)

    jobs = [job(f"test:many:{index:03d}") for index in range(2 * CLAIM_BATCH + 50)]
    start = threading.Barrier(4)
    counts: list[int] = []

    def beat(order: list[Job]) -> None:
        start.wait()
        counts.append(fire_due(ctx, order, NOW))

    threads = [threading.Thread(target=beat, args=(jobs[::step],)) for step in (1, -1, 1, -1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(fired) == sorted(j.key for j in jobs)
    assert sum(counts) == len(jobs)
    assert fire_due(ctx, jobs, NOW + timedelta(seconds=20)) == 0  # that slot is taken


def test_the_beat_wakes_just_after_each_whole_minute() -> None:
    """Every cron slot falls on a whole minute; between them ``beat_interval`` still applies."""
    at = datetime(2026, 11, 28, 12, 0, 45, tzinfo=UTC)
    assert seconds_to_next_pass(at, 30) == pytest.approx(15 + WAKE_MARGIN)
    assert seconds_to_next_pass(at.replace(second=10), 30) == 30
    assert seconds_to_next_pass(at.replace(second=59, microsecond=990000), 30) == pytest.approx(
        0.01 + WAKE_MARGIN)
