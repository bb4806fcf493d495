"""A worker killed mid-dump with no attempt left (``max_attempts: 1``): its backups end
`failed`, nothing partial stays, work resumes. Retries: tests/faults/."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, start_stack
from tests.services import PG_PASSWORD, PostgresCluster, Redis
from tests.worker.beat.conftest import SCHED_CONFIG
from tests.worker.beat.helpers import (
    StallingProxy,
    meta_sql,
    start_beat,
    storage_files,
    wait_until,
)


@pytest.fixture
def kill_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    """A stack of its own: this test kills its only worker."""
    config = SCHED_CONFIG.replace("  beat_interval: 1\n", "  beat_interval: 1\n"
                                                          "  max_attempts: 1\n")
    stack = start_stack(workdir / "kill-stack", pg, redis, config=config, workers=0)
    stack.workers.append(start_beat(stack, "beat"))
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()


def test_sigkilled_worker_leaves_failed_rows_and_no_partial_files(
    kill_stack: Stack, pg: PostgresCluster, big_db: str, proxy: StallingProxy,
) -> None:
    api = kill_stack.client
    worker = kill_stack.start_worker("doomed")
    dbs = [api.register_postgres(pg, big_db, port=proxy.port, compression="none")
           for _ in range(2)]
    ids = [api.post("/backups", json={"database_id": db}).json()["id"] for db in dbs]

    # Both dumps run at once on the one worker (concurrency 2) and have written data.
    def mid_stream() -> bool:
        running = all(api.get(f"/backups/{i}").json()["status"] == "running" for i in ids)
        partial = [f for db in dbs for f in storage_files(kill_stack.storage_dir / db)
                   if f.name.startswith(".tmp-") and f.stat().st_size > 1024 * 1024]
        return running and len(partial) == 2

    wait_until(mid_stream, 60, "two dumps streaming in parallel")
    worker.stop(signal.SIGKILL)

    # heartbeat_timeout is 6 s and beat passes every second.
    for backup_id in ids:
        failed = wait_until(
            lambda i=backup_id: (b := api.get(f"/backups/{i}").json())["status"] == "failed"
            and b, 30, f"backup {backup_id} to be failed")
        assert "stopped responding" in failed["error"], failed["error"]
        assert failed["error"].endswith("gave up after 1 attempt"), failed["error"]
        assert failed["storage_key"] is None and failed["finished_at"]
    for db in dbs:
        assert storage_files(kill_stack.storage_dir / db) == []

    # The database is not blocked: with a live worker and a direct connection it backs up.
    kill_stack.start_worker("healthy")
    # Re-pointing clears the stored password unless the request sends it again.
    repoint = {"port": pg.port, "password": PG_PASSWORD}
    assert api.patch(f"/databases/{dbs[0]}", json=repoint).status_code == 200
    retry = api.post("/backups", json={"database_id": dbs[0]})
    assert retry.status_code == 202, retry.text
    assert api.wait_backup(retry.json()["id"], timeout=180)["status"] == "completed"


@pytest.fixture
def limit_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    """A stack whose backups may run 10 s (the smallest limit the config accepts)."""
    config = SCHED_CONFIG.replace("  beat_interval: 1\n", "  beat_interval: 1\n"
                                                          "  backup_time_limit: 10\n")
    stack = start_stack(workdir / "limit-stack", pg, redis, config=config)
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()


def test_time_limit_fails_a_stalled_dump_cleanly(
    limit_stack: Stack, pg: PostgresCluster, big_db: str, proxy: StallingProxy,
) -> None:
    api = limit_stack.client
    db_id = api.register_postgres(pg, big_db, port=proxy.port, compression="none")
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"],
                             timeout=60)
    assert backup["status"] == "failed"
    assert backup["error"] == "time limit of 10s exceeded"
    assert storage_files(limit_stack.storage_dir / db_id) == []
    # The worker lived through it and takes the next backup.
    repoint = {"port": pg.port, "password": PG_PASSWORD}
    assert api.patch(f"/databases/{db_id}", json=repoint).status_code == 200
    again = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"],
                            timeout=120)
    assert again["status"] == "completed", again["error"]


def test_a_pending_backup_whose_message_was_lost_still_runs(
    beat_stack: Stack, pg: PostgresCluster, sched_pg_db: str,
) -> None:
    """As if the broker lost the message: a pending row with nothing queued behind it."""
    api = beat_stack.client
    db_id = api.register_postgres(pg, sched_pg_db)
    meta_sql(pg, beat_stack, "INSERT INTO backups (id, database_id, engine, status, trigger, "
                             "created_at, compression, storage) VALUES ("
                             "'00000000-0000-4000-8000-000000000001', "
                             f"'{db_id}', 'postgres', 'pending', 'manual', "
                             "now() - interval '1 minute', 'gzip', 'local')")
    # beat_interval is 1 s, so a pending row quiet for 10 s is enqueued again.
    done = api.wait_backup("00000000-0000-4000-8000-000000000001", timeout=60)
    assert done["status"] == "completed", done["error"]
    assert "enqueued it again" in beat_stack.logs()
