"""POST …/cancel: a runaway dump, a stuck restore and a slow package are stopped, leave
nothing behind and end ``cancelled``; a pending job is cancelled at once; a finished one
answers 409. Each through the API, against real pg_dump, pg_restore, MinIO and workers.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Client
from tests.faults.conftest import FAULT_CONFIG, StackFactory, start_worker
from tests.faults.helpers import ThrottledProxy, celery_child
from tests.minio import MINIO_PASSWORD, MINIO_USER, MinioServer
from tests.services import PostgresCluster, Redis
from tests.worker.beat.helpers import StallingProxy, storage_files, wait_until

pytestmark = pytest.mark.faults

# Through the proxy at this rate the 30 MB table takes a minute and a half to dump: a
# backup that ends within the waits below was stopped, it did not finish.
CRAWL = 320 * 1024


def _tools_on(port: int, *names: str) -> list[str]:
    """Return the command lines of ``names`` (pg_dump…) connected to ``port``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].decode(errors="replace").rsplit("/", 1)[-1] in names \
                and str(port).encode() in argv:
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def _counter(api: Client, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(api.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def _cancel_mid_stream(api: Client, backup_id: str) -> dict[str, object]:
    """Cancel a running backup; return the backup once finished."""
    asked = api.post(f"/backups/{backup_id}/cancel")
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "running" and asked.json()["cancel_requested_at"]
    # Asking twice is the same request.
    again = api.post(f"/backups/{backup_id}/cancel")
    assert again.status_code == 202
    assert again.json()["cancel_requested_at"] == asked.json()["cancel_requested_at"]
    return api.wait_backup(backup_id, timeout=20)


def test_a_runaway_dump_cancelled_mid_stream_stops_and_leaves_no_file(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
    slow_pg: ThrottledProxy,
) -> None:
    slow_pg.rate = CRAWL
    stack = fault_stack(pg, redis)
    api = stack.client
    db = api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    # Mid-stream: the temporary file has the first megabytes of the table.
    wait_until(lambda: [p for p in storage_files(stack.storage_dir)
                        if p.stat().st_size > 2 * 1024 * 1024], 60, "the dump to stream")

    done = _cancel_mid_stream(api, backup_id)
    assert done["status"] == "cancelled", done
    assert str(done["error"]).startswith("cancelled on request at "), done["error"]
    assert done["storage_key"] is None and done["size_bytes"] is None
    assert done["finished_at"] is not None
    assert _tools_on(slow_pg.port, "pg_dump") == []
    assert storage_files(stack.storage_dir) == []

    conflict = api.post(f"/backups/{backup_id}/cancel")
    assert conflict.status_code == 409
    assert conflict.json()["message"] == (f"backup {backup_id} is cancelled; only a pending "
                                          "or running backup can be cancelled")
    listed = api.get("/backups", params={"status": "cancelled", "database_id": db}).json()
    assert [b["id"] for b in listed] == [backup_id]
    # Neither a success nor a failure.
    labels = {"database_id": db, "engine": "postgres"}
    assert _counter(api, "backup_api_backups_total", **labels, status="cancelled") == 1
    assert _counter(api, "backup_api_backups_total", **labels, status="failed") == 0
    assert _counter(api, "backup_api_backups_total", **labels, status="completed") == 0
    # The database is free again: the next backup runs (and is stopped as well).
    next_id = api.post("/backups", json={"database_id": db}).json()["id"]
    wait_until(lambda: api.get(f"/backups/{next_id}").json()["status"] == "running", 60,
               "the next backup to start")


@pytest.mark.requires_peer("minio")
def test_a_cancelled_upload_to_minio_leaves_no_object_and_no_open_upload(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
    slow_pg: ThrottledProxy, minio: MinioServer, s3_bucket: str,
) -> None:
    slow_pg.rate = CRAWL * 4
    stack = fault_stack(pg, redis, config=_s3_config(minio.endpoint, s3_bucket))
    api = stack.client
    db = api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    # Parts are 8 MiB: the upload is open once the first one went out.
    uploads = wait_until(lambda: minio.pending_uploads(s3_bucket), 60,
                         "a multipart upload to open")

    done = _cancel_mid_stream(api, backup_id)
    assert done["status"] == "cancelled", done
    assert _tools_on(slow_pg.port, "pg_dump") == []
    # MinIO lists the uploads of one key only: ask for that key.
    assert minio.client().list_multipart_uploads(Bucket=s3_bucket, Prefix=uploads[0]).get(
        "Uploads", []) == []
    assert minio.keys(s3_bucket) == []


def _s3_config(endpoint: str, bucket: str) -> str:
    return FAULT_CONFIG.replace("storage:\n  type: local\n", f"""storage:
  type: s3
  s3:
    endpoint_url: "{endpoint}"
    access_key: "{MINIO_USER}"
    secret_key: "{MINIO_PASSWORD}"
    bucket: "{bucket}"
    prefix: "cancel"
""")


def test_pending_jobs_are_cancelled_at_once_and_never_run(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis,
) -> None:
    stack = fault_stack(pg, redis, workers=0)
    api = stack.client
    pg.create_database("cancel_pending")
    db = api.register_postgres(pg, "cancel_pending")
    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    package_id = api.post("/packages/create", json={"database_ids": [db]}).json()["id"]

    for kind, row_id in (("backups", backup_id), ("packages", package_id)):
        answer = api.post(f"/{kind}/{row_id}/cancel")
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["status"] == "cancelled"
        assert body["error"] == "cancelled on request before it started"
        assert body["finished_at"] is not None and body["cancel_requested_at"] is not None

    # A worker arriving later takes the messages and runs neither.
    start_worker(stack, "late")
    wait_until(lambda: stack.logs().count("is not pending; nothing to do") >= 2, 60,
               "the worker to skip both")
    assert api.get(f"/backups/{backup_id}").json()["status"] == "cancelled"
    assert api.get(f"/packages/{package_id}").json()["status"] == "cancelled"
    assert storage_files(stack.storage_dir) == []
    assert _counter(api, "backup_api_packages_total", status="cancelled") == 1
    # The database takes a new backup at once: the cancelled one holds no slot.
    again = api.wait_backup(api.post("/backups", json={"database_id": db}).json()["id"])
    assert again["status"] == "completed", again["error"]

    finished = api.post(f"/backups/{again['id']}/cancel")
    assert finished.status_code == 409
    assert finished.json()["message"] == (f"backup {again['id']} is completed; only a "
                                          "pending or running backup can be cancelled")
    missing = api.post("/restores/00000000-0000-0000-0000-000000000000/cancel")
    assert missing.status_code == 404


def test_a_restore_stuck_on_its_target_is_cancelled_and_rolled_back(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis,
) -> None:
    pg.create_database("cancel_restore_src")
    # Hundreds of statements to replay: more replies than the proxy lets through.
    pg.psql("DO $$ BEGIN FOR i IN 1..300 LOOP EXECUTE format("
            "'CREATE TABLE t%s AS SELECT g AS id FROM generate_series(1, 100) g', i); "
            "END LOOP; END $$", "cancel_restore_src")
    pg.create_database("cancel_restore_dst")
    stuck = StallingProxy(pg.port, 6000).start()
    try:
        stack = fault_stack(pg, redis)
        api = stack.client
        source = api.register_postgres(pg, "cancel_restore_src")
        target = api.register_postgres(pg, "cancel_restore_dst", port=stuck.port,
                                       restore_target=True)
        backup = api.wait_backup(api.post("/backups", json={"database_id": source}).json()["id"])
        assert backup["status"] == "completed", backup["error"]
        restore = api.post(f"/backups/{backup['id']}/restore",
                           json={"target_database_id": target, "confirm": target})
        assert restore.status_code == 202, restore.text
        restore_id = restore.json()["id"]
        wait_until(lambda: _tools_on(stuck.port, "pg_restore"), 60, "pg_restore to start")

        asked = api.post(f"/restores/{restore_id}/cancel")
        assert asked.status_code == 202, asked.text
        done = api.wait_done(f"/restores/{restore_id}", timeout=20)
        assert done["status"] == "cancelled", done
        assert _tools_on(stuck.port, "pg_restore") == []
        # pg_restore --single-transaction was killed before the end of its input.
        assert pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                       "cancel_restore_dst").strip() == "0"
        assert api.post(f"/restores/{restore_id}/cancel").status_code == 409
    finally:
        stuck.close()


@pytest.mark.requires_peer("minio")
def test_a_package_reading_slowly_from_minio_is_cancelled_without_leftovers(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
    minio: MinioServer, s3_bucket: str,
) -> None:
    # Every byte read back from the bucket crawls; uploads go at full speed.
    slow_s3 = ThrottledProxy(minio.port, CRAWL).start()
    try:
        stack = fault_stack(pg, redis,
                            config=_s3_config(f"http://127.0.0.1:{slow_s3.port}", s3_bucket))
        api = stack.client
        db = api.register_postgres(pg, source_db, compression="none")
        backup = api.wait_backup(api.post("/backups", json={"database_id": db}).json()["id"])
        assert backup["status"] == "completed", backup["error"]
        stored = minio.keys(s3_bucket)
        package_id = api.post("/packages/create", json={"database_ids": [db]}).json()["id"]
        running = wait_until(lambda: _if_running(api, f"/packages/{package_id}"), 60,
                             "the package to start")

        asked = api.post(f"/packages/{package_id}/cancel")
        assert asked.status_code == 202, asked.text
        done = api.wait_done(f"/packages/{package_id}", timeout=20)
        assert done["status"] == "cancelled", done
        assert done["storage_key"] is None
        assert minio.keys(s3_bucket) == stored  # the backup and its sidecar only
        key = f"cancel/{running['storage_key']}"
        assert minio.client().list_multipart_uploads(Bucket=s3_bucket, Prefix=key).get(
            "Uploads", []) == []
    finally:
        slow_s3.close()


def _if_running(api: Client, path: str) -> dict[str, object] | None:
    body: dict[str, object] = api.get(path).json()
    return body if body["status"] == "running" else None


def test_a_cancel_asked_of_a_dead_worker_is_finished_by_the_reaper_not_retried(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
    slow_pg: ThrottledProxy,
) -> None:
    """The worker is frozen when the cancel is asked, then killed: it never sees the
    request. The beat's reaper, finding the backup without heartbeat, cancels it instead
    of retrying it as a second attempt."""
    slow_pg.rate = CRAWL
    stack = fault_stack(pg, redis)
    api = stack.client
    db = api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
    backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
    wait_until(lambda: _if_running(api, f"/backups/{backup_id}"), 60, "the backup to run")

    celery = celery_child(stack.workers[0])
    os.killpg(celery, signal.SIGSTOP)  # the Celery worker and its pool: the job's threads
    asked = api.post(f"/backups/{backup_id}/cancel")
    assert asked.status_code == 202 and asked.json()["status"] == "running"
    os.killpg(celery, signal.SIGKILL)

    done = api.wait_backup(backup_id, timeout=60)
    assert done["status"] == "cancelled", done
    assert done["attempt"] == 1
    assert str(done["error"]).startswith("cancelled on request; worker "), done["error"]
    wait_until(lambda: not _tools_on(slow_pg.port, "pg_dump"), 30, "the orphaned pg_dump to end")
    assert storage_files(stack.storage_dir) == []
