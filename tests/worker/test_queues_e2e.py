"""One queue per kind of job: a flood of one kind never makes a backup wait for it.

The attack (issue 12): 300 package requests queued in front of a backup made it wait
75 s, all kinds sharing one queue. Packages are now one pending at a time, so the
flood here is what the API still accepts in any number: 300 verifications of one
backup (the ``restores`` queue). A backup requested after them must start within
seconds, while most of the flood is still waiting, which one shared first-in
first-out queue would not allow.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from shared.broker import make_celery
from shared.config import load_settings
from shared.jobs import RETENTION_TASK
from tests.conftest import Client, Stack, start_stack
from tests.services import (
    PostgresCluster,
    Process,
    Redis,
    free_port,
    printed_key,
    wait_for,
    wait_http,
)

FLOOD = 300


@pytest.fixture(scope="module")
def queue_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    stack = start_stack(workdir / "queues", pg, redis, workers=0)
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()


def _worker(stack: Stack, name: str, *argv: str) -> Process:
    worker = Process(name, ["worker", f"--hostname={name}@%h", "--concurrency=2", *argv],
                     stack.env, stack.root / f"{name}.log").start()
    stack.workers.append(worker)
    return worker


def _pending_total(api: Client, path: str) -> int:
    response = api.get(path, params={"status": "pending", "page_size": 1})
    return int(json.loads(response.headers["X-Pagination"])["total"])


def _wait_started(api: Client, backup_id: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        backup: dict[str, object] = api.get(f"/backups/{backup_id}").json()
        if backup["started_at"]:
            return backup
        time.sleep(0.1)
    raise AssertionError(f"backup {backup_id} did not start within {timeout}s")


def test_a_worker_takes_only_the_queues_it_is_given(queue_stack: Stack,
                                                    pg: PostgresCluster) -> None:
    api = queue_stack.client
    restores_only = _worker(queue_stack, "restores-only", "--queues", "restores")
    db_id = api.register_postgres(pg, "postgres")
    backup_id = api.post("/backups", json={"database_id": db_id}).json()["id"]
    time.sleep(6)  # the restores worker is up and idle, and leaves the backup alone
    assert api.get(f"/backups/{backup_id}").json()["status"] == "pending"

    backups_only = _worker(queue_stack, "backups-only", "--queues", "backups")
    backup = api.wait_backup(backup_id)
    assert backup["status"] == "completed", backup["error"]
    backups_only.stop()
    assert "backups.run" in backups_only.log()

    verify = api.post(f"/backups/{backup_id}/verify")
    assert verify.status_code == 202, verify.text
    done = api.wait_done(f"/restores/{verify.json()['id']}")
    assert done["status"] == "completed", done["error"]
    assert "restores.run" in restores_only.log() and "backups.run" not in restores_only.log()


def test_a_backup_queued_after_a_flood_of_verifications_starts_within_seconds(
        queue_stack: Stack, pg: PostgresCluster) -> None:
    api = queue_stack.client
    for worker in queue_stack.workers:
        worker.stop()
    # A few MB, so that each verification takes a moment, as real ones do.
    flood_db = f"flood_{uuid.uuid4().hex[:8]}"
    pg.create_database(flood_db)
    pg.psql("CREATE TABLE rows AS SELECT g AS id, md5(g::text) || md5(random()::text) AS v "
            "FROM generate_series(1, 100000) g", flood_db)
    source = api.register_postgres(pg, flood_db)
    _worker(queue_stack, "all-queues")  # no --queues: every queue, concurrency 2
    verified = api.wait_backup(api.post("/backups", json={"database_id": source}).json()["id"])
    assert verified["status"] == "completed", verified["error"]
    later = api.register_postgres(pg, "postgres")

    def verify(_: int) -> int:
        return api.post(f"/backups/{verified['id']}/verify").status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(verify, range(FLOOD))) == {202}
    backup = api.post("/backups", json={"database_id": later})
    assert backup.status_code == 202, backup.text
    started = _wait_started(api, backup.json()["id"], timeout=30)
    waited = (datetime.fromisoformat(str(started["started_at"]))
              - datetime.fromisoformat(str(started["created_at"]))).total_seconds()
    still_waiting = _pending_total(api, "/restores")
    assert waited < 5, f"the backup waited {waited:.1f}s behind the flood"
    assert still_waiting > FLOOD // 2, (
        f"only {still_waiting} verifications were still queued: the flood had drained, "
        "so this run proves nothing")
    assert api.wait_backup(backup.json()["id"])["status"] == "completed"


def test_the_embedded_broker_moves_every_kind_of_job(tmp_path: Path,
                                                     pg: PostgresCluster) -> None:
    """``backup-api run``: the filesystem broker carries the four queues too."""
    port = free_port()
    (tmp_path / "config.yaml").write_text("")
    env = {"BACKUP_API_DATA_DIR": str(tmp_path / "data"),
           "BACKUP_API_CONFIG": str(tmp_path / "config.yaml"),
           "DATABASE_URL": "", "CELERY_BROKER_URL": ""}
    run = Process("run", ["run", "--port", str(port)], env, tmp_path / "run.log").start()
    try:
        api = Client(f"http://127.0.0.1:{port}", key=printed_key(run))
        wait_http(api.base + "/ready")
        db_id = api.register_postgres(pg, "postgres", package=True)
        backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
        assert backup["status"] == "completed", backup["error"]
        verify = api.post(f"/backups/{backup['id']}/verify").json()
        package = api.post("/packages/create").json()
        assert api.wait_done(f"/restores/{verify['id']}")["status"] == "completed"
        assert api.wait_done(f"/packages/{package['id']}")["status"] == "completed"
        # Retention is sent by the beat (hourly); send one the same way, by name.
        settings = load_settings(env={**os.environ, **env})
        make_celery(settings).send_task(RETENTION_TASK, args=[])
        wait_for(lambda: re.search(r"Task retention\.run\[[^]]+\] succeeded", run.log())
                 is not None, 60, "the retention task")
    finally:
        run.stop()
    assert "Traceback" not in run.log(), run.log()[-3000:]
