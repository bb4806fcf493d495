"""Workers stopped, killed or started too early: backups finish, or are retried as a new
attempt of the same row, never run twice at once and never lost."""

from __future__ import annotations

import os
import signal
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Client
from tests.faults.conftest import FAULT_CONFIG, StackFactory, start_worker
from tests.faults.helpers import ThrottledProxy, celery_child
from tests.services import PostgresCluster, Redis
from tests.worker.beat.helpers import StallingProxy, storage_files, wait_until

pytestmark = pytest.mark.faults


def _samples(text: str) -> dict[str, float]:
    return {s.name: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if not s.labels}


def _running(api: Client, backup_id: str) -> bool:
    return bool(api.get(f"/backups/{backup_id}").json()["status"] == "running")


def test_sigterm_lets_the_running_backup_finish(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
    slow_pg: ThrottledProxy,
) -> None:
    """A deploy (docker compose stop sends SIGTERM): the worker takes nothing new and
    finishes what it runs within its grace period."""
    stack = fault_stack(pg, redis)
    api = stack.client
    db, other = (api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
                 for _ in range(2))
    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    wait_until(lambda: _running(api, backup_id), 60, "the backup to run")
    time.sleep(1)

    worker = stack.workers[0]
    assert worker.process is not None
    os.killpg(worker.process.pid, signal.SIGTERM)
    time.sleep(1)
    # Sent during the shutdown, while a slot is free: not taken.
    queued = api.post("/backups", json={"database_id": other}).json()["id"]
    assert worker.process.wait(120) == 0

    done = api.get(f"/backups/{backup_id}").json()
    assert done["status"] == "completed", done
    assert done["attempt"] == 1
    assert api.get(f"/backups/{queued}").json()["status"] == "pending"
    assert "Warm shutdown" in worker.log()
    # What BackupsWaitingWithoutWorker (deploy/prometheus/alerts.yml) fires on.
    metrics = _samples(api.get("/metrics").text)
    assert metrics["backup_api_workers_online"] == 0
    assert metrics["backup_api_backups_pending"] == 1


def test_a_stop_past_the_grace_period_is_retried_as_attempt_2(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
    slow_pg: ThrottledProxy,
) -> None:
    stack = fault_stack(pg, redis, workers=0)
    api = stack.client
    worker = start_worker(stack, "short", "--grace-period=2")
    db = api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    wait_until(lambda: _running(api, backup_id), 60, "the backup to run")

    worker.stop(signal.SIGTERM, timeout=60)
    assert "grace period of 2s over: cold shutdown" in worker.log()
    start_worker(stack, "next")

    done = api.wait_backup(backup_id, timeout=120)
    assert done["status"] == "completed", done["error"]
    assert done["attempt"] == 2
    listed = api.get("/backups", params={"database_id": db}).json()
    assert [b["id"] for b in listed] == [backup_id]  # the same row, not a second one


def test_a_killed_worker_is_restarted_and_its_backup_retried_as_attempt_2(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
    slow_pg: ThrottledProxy,
) -> None:
    """SIGKILL (the OOM killer, a crash) of the Celery worker mid-dump: backup-api worker
    starts a new one, and the beat hands it the backup again, as its second attempt."""
    stack = fault_stack(pg, redis)
    api = stack.client
    worker = stack.workers[0]
    db = api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    wait_until(lambda: _running(api, backup_id), 60, "the backup to run")
    time.sleep(1)

    first = celery_child(worker)
    os.kill(first, signal.SIGKILL)

    done = api.wait_backup(backup_id, timeout=120)
    assert done["status"] == "completed", done["error"]
    assert done["attempt"] == 2
    assert worker.process is not None and worker.process.poll() is None
    assert celery_child(worker) != first
    assert "Celery worker exited unexpectedly (killed by SIGKILL)" in worker.log()
    listed = api.get("/backups", params={"database_id": db}).json()
    assert [b["id"] for b in listed] == [backup_id]
    assert [p.name for p in storage_files(stack.storage_dir / db)
            if p.name.startswith(".tmp-")] == []  # the first attempt's partial file is gone


def test_after_max_attempts_the_backup_fails_saying_how_many(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
    stalled_pg: StallingProxy,
) -> None:
    stack = fault_stack(pg, redis)
    api = stack.client
    worker = stack.workers[0]
    db = api.register_postgres(pg, source_db, port=stalled_pg.port, compression="none")
    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    for attempt in (1, 2):
        wait_until(lambda a=attempt: (b := api.get(f"/backups/{backup_id}").json())[
            "status"] == "running" and b["attempt"] == a, 90, f"attempt {attempt} to run")
        os.kill(celery_child(worker), signal.SIGKILL)

    failed = api.wait_backup(backup_id, timeout=90)
    assert failed["status"] == "failed"
    assert failed["attempt"] == 2
    assert "stopped responding" in failed["error"]
    assert failed["error"].endswith("gave up after 2 attempts"), failed["error"]
    assert storage_files(stack.storage_dir / db) == []


def test_a_worker_started_before_the_metadata_db_waits_for_it(
    fault_stack: StackFactory, meta_pg: PostgresCluster, pg: PostgresCluster, redis: Redis,
    source_db: str,
) -> None:
    """The metadata DB on a cluster of its own, stopped while the worker starts."""
    stack = fault_stack(meta_pg, redis, workers=0)
    api = stack.client
    db = api.register_postgres(pg, source_db, compression="none")
    meta_pg.psql("CHECKPOINT")  # commits are asynchronous on the test clusters
    meta_pg.stop()

    worker = start_worker(stack, "early")
    wait_until(lambda: "waiting for the metadata DB" in worker.log(), 60,
               "the worker to say what it waits for")
    time.sleep(3)
    assert worker.process is not None and worker.process.poll() is None
    meta_pg.resume()

    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    assert api.wait_backup(backup_id, timeout=120)["status"] == "completed"
    assert "Celery worker started" in worker.log()


def test_a_metadata_db_outage_longer_than_the_heartbeat_timeout_kills_no_backup(
    fault_stack: StackFactory, meta_pg: PostgresCluster, pg: PostgresCluster, redis: Redis,
    source_db: str, slow_pg: ThrottledProxy,
) -> None:
    """Heartbeats cannot be written while the DB is down: once it is back, the beat gives
    the workers a heartbeat timeout to write theirs before it judges anyone dead."""
    # Heartbeats every 3 s, the reaper every second: once the DB is back, the reaper
    # looks before the first heartbeat gets through, most of the time.
    stack = fault_stack(meta_pg, redis, config=FAULT_CONFIG.replace(
        "heartbeat_timeout: 6", "heartbeat_timeout: 12"))
    api = stack.client
    slow_pg.rate //= 3  # a dump of ~30 s
    db = api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    wait_until(lambda: _running(api, backup_id), 60, "the backup to run")
    meta_pg.psql("CHECKPOINT")
    meta_pg.stop()
    time.sleep(15)
    meta_pg.resume()

    done = api.wait_backup(backup_id, timeout=120)
    assert done["status"] == "completed", done["error"]
    assert done["attempt"] == 1
    assert "heartbeat of backup" in stack.logs()  # it did miss heartbeats
