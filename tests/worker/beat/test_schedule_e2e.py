"""Cron schedules through real beat processes: they fire, once per slot, and follow the API."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Client, Stack
from tests.services import PostgresCluster
from tests.worker.beat.helpers import StallingProxy, meta_sql, wait_until

EVERY_MINUTE = "* * * * *"


def _scheduled(api: Client, db_id: str) -> list[dict[str, Any]]:
    body = api.get("/backups", params={"database_id": db_id, "page_size": 100}).json()
    return [b for b in body if b["trigger"] == "schedule"]


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)


def test_missed_slots_yield_one_catch_up_run(beat_stack: Stack, pg: PostgresCluster,
                                             sched_pg_db: str) -> None:
    """A database whose schedule was due ten times while no beat ran gets one backup."""
    api = beat_stack.client
    db_id = api.register_postgres(pg, sched_pg_db, schedule=EVERY_MINUTE)
    meta_sql(pg, beat_stack, "UPDATE databases SET created_at = now() - interval '10 minutes' "
                             f"WHERE id = '{db_id}'")
    first = wait_until(lambda: _scheduled(api, db_id), 15, "the catch-up backup")
    assert len(first) == 1
    slot = _parse(first[0]["scheduled_for"])
    assert slot.second == 0 and datetime.now(UTC) - slot < timedelta(minutes=1, seconds=15)
    assert api.wait_backup(first[0]["id"])["status"] == "completed"
    # Several beat passes later, still one run per slot (the next one is a minute away).
    time.sleep(3)
    runs = _scheduled(api, db_id)
    assert len({b["scheduled_for"] for b in runs}) == len(runs)
    assert all(_parse(b["scheduled_for"]) >= slot for b in runs)
    api.patch(f"/databases/{db_id}", json={"enabled": False})


def test_two_beats_fire_each_slot_once_and_follow_api_changes(
    beat_stack: Stack, pg: PostgresCluster, sched_pg_db: str, big_db: str,
    proxy: StallingProxy,
) -> None:
    api = beat_stack.client
    added = api.register_postgres(pg, sched_pg_db, schedule=EVERY_MINUTE)
    # Rescheduled: daily at first, then every minute through PATCH.
    changed = api.register_postgres(pg, sched_pg_db, schedule="0 2 * * *")
    assert api.patch(f"/databases/{changed}", json={"schedule": EVERY_MINUTE}).status_code == 200
    # Evaluated in Kolkata (UTC+05:30): "every minute" is every minute in any zone.
    zoned = api.register_postgres(pg, sched_pg_db, schedule=EVERY_MINUTE,
                                  timezone="Asia/Kolkata")
    disabled = api.register_postgres(pg, sched_pg_db, schedule=EVERY_MINUTE, enabled=False)
    removed = api.register_postgres(pg, sched_pg_db, schedule=EVERY_MINUTE)
    assert api.delete(f"/databases/{removed}").status_code == 204
    # Unscheduled later: every minute, then disabled before its slot comes.
    paused = api.register_postgres(pg, sched_pg_db, schedule=EVERY_MINUTE)
    assert api.patch(f"/databases/{paused}", json={"enabled": False}).status_code == 200
    # Still busy when its slot comes: a manual backup stalled mid-dump.
    busy = api.register_postgres(pg, big_db, schedule=EVERY_MINUTE, port=proxy.port)
    stalled = api.post("/backups", json={"database_id": busy}).json()["id"]

    # Wait through one minute boundary (the slot after they were created).
    runs = {db: wait_until(lambda db=db: _scheduled(api, db), 80, f"a scheduled backup of {db}")
            for db in (added, changed, zoned)}
    for backups in runs.values():
        assert len(backups) == 1, backups
        done = api.wait_backup(backups[0]["id"])
        assert done["status"] == "completed", done["error"]
        assert _parse(done["scheduled_for"]).second == 0
    # Both beats were ticking, yet each slot produced one backup and one "fired" line.
    time.sleep(3)
    logs = beat_stack.logs()
    for db in (added, changed, zoned):
        slots = [_parse(b["scheduled_for"]) for b in _scheduled(api, db)]
        assert len(slots) == len(set(slots))
        for slot in slots:
            assert logs.count(f"backup:{db}: fired for slot {slot.isoformat()}") == 1
    beats = [p for p in beat_stack.workers if p.name.startswith("beat")]
    assert len(beats) == 2
    for beat in beats:
        assert beat.process is not None and beat.process.poll() is None  # still running
        assert "DatabaseScheduler" in beat.log()
    for db in (disabled, removed, paused):
        assert api.get("/backups", params={"database_id": db}).json() == []
    # The busy database's slot is on record as skipped, not silently dropped.
    skipped = _scheduled(api, busy)
    assert skipped and all(b["status"] == "failed" for b in skipped)
    assert "skipped the scheduled run" in skipped[0]["error"]
    assert f"backup {stalled} was still running" in skipped[0]["error"]
    assert api.get(f"/backups/{stalled}").json()["status"] == "running"
    proxy.close()  # the stalled dump now fails
    for db in (added, changed, zoned, busy):
        api.patch(f"/databases/{db}", json={"enabled": False})
