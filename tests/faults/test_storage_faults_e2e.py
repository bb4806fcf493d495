"""The S3 endpoint stops during an upload: the backup fails readably and, once the
endpoint is back, nothing of it is left in the bucket (no object, no open upload)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.faults.conftest import FAULT_CONFIG, StackFactory
from tests.faults.helpers import ThrottledProxy
from tests.minio import MINIO_PASSWORD, MINIO_USER, MinioServer
from tests.services import PostgresCluster, Redis
from tests.worker.beat.helpers import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.requires_peer("minio")]


def test_minio_stopped_mid_upload_fails_readably_and_leaves_nothing(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
    slow_pg: ThrottledProxy,
) -> None:
    root = Path(tempfile.mkdtemp(prefix="backup-api-minio-faults-"))
    minio = MinioServer(root).start()
    try:
        bucket = minio.make_bucket()
        config = FAULT_CONFIG.replace("storage:\n  type: local\n", f"""storage:
  type: s3
  s3:
    endpoint_url: "{minio.endpoint}"
    access_key: "{MINIO_USER}"
    secret_key: "{MINIO_PASSWORD}"
    bucket: "{bucket}"
    prefix: "faults"
""")
        stack = fault_stack(pg, redis, config=config)
        api = stack.client
        db = api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
        backup_id = api.post("/backups", json={"database_id": db}).json()["id"]
        # Parts are 8 MiB: the upload is open once the first one went out.
        uploads = wait_until(lambda: minio.pending_uploads(bucket), 60,
                             "a multipart upload to open")
        leftover = uploads[0].removeprefix("faults/")

        assert minio.process is not None
        minio.process.kill()
        minio.process.wait()
        failed = api.wait_backup(backup_id, timeout=120)
        assert failed["status"] == "failed"
        assert failed["attempt"] == 1  # a storage error is not retried; its cleanup kept the
        # heartbeat going, so the reaper did not take the worker for dead either
        assert failed["error"].startswith(f"cannot upload faults/{db}/"), failed["error"]
        assert f"cannot reach the S3 endpoint {minio.endpoint} (bucket '{bucket}')" in \
            failed["error"]
        assert MINIO_PASSWORD not in failed["error"] and failed["storage_key"] is None

        minio.start()  # same port, same data
        wait_until(lambda: f"removed partial artifact {db}/" in stack.logs(), 60,
                   "the beat to remove what the failed upload left")
        # MinIO lists the uploads of one key only: ask for that key.
        key = f"faults/{leftover}"
        assert minio.client().list_multipart_uploads(Bucket=bucket, Prefix=key).get(
            "Uploads", []) == []
        assert minio.keys(bucket) == []
        # The storage works again: the next backup of the database is stored whole.
        slow_pg.rate = 64 * 1024 * 1024
        again = api.wait_backup(api.post("/backups", json={"database_id": db}).json()["id"])
        assert again["status"] == "completed", again["error"]
        assert minio.keys(bucket) == [f"faults/{again['storage_key']}",
                                      f"faults/{again['storage_key']}.json"]
    finally:
        minio.stop()
        shutil.rmtree(root, ignore_errors=True)
