"""PostgreSQL backups through the API into a real MinIO: download, restore, bad S3 settings."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.storage.s3_upload import DEFAULT_PART_SIZE
from tests.conftest import Stack, start_stack
from tests.minio import MINIO_PASSWORD, MINIO_USER, MinioServer
from tests.services import PostgresCluster, Redis
from tests.worker.test_backup_postgres_e2e import (
    CONTENT_QUERY,
    SEED_SQL,
    _decompress,
    _pg_restore,
)

PREFIX = "e2e"
WRONG_SECRET = "wrong-Secret-Key-5519"
# Rows of incompressible-enough text: with compression "none" the dump is ~40 MB,
# so it crosses the 8 MiB part size and goes up as a real multipart upload.
BIG_SQL = """
CREATE TABLE blobs (id int PRIMARY KEY, body text);
INSERT INTO blobs SELECT g, repeat(md5(g::text), 40) FROM generate_series(1, 32000) g;
"""
BIG_QUERY = "SELECT count(*), md5(string_agg(body, '' ORDER BY id)) FROM blobs"


def s3_config(endpoint: str, bucket: str, secret_line: str, access_key: str = MINIO_USER
              ) -> str:
    return f"""
global:
  compression: gzip
  max_parallel_jobs: 2
storage:
  type: s3
  s3:
    endpoint_url: "{endpoint}"
    access_key: "{access_key}"
    {secret_line}
    bucket: "{bucket}"
    prefix: "{PREFIX}/"
"""


def _stop(stack: Stack) -> None:
    for process in [stack.api, *stack.workers]:
        process.stop()


@pytest.fixture(scope="module")
def s3_stack(workdir: Path, pg: PostgresCluster, redis: Redis, minio: MinioServer
             ) -> Iterator[tuple[Stack, str]]:
    bucket = minio.make_bucket("e2e-backups")
    root = workdir / "s3-stack"
    root.mkdir(parents=True, exist_ok=True)
    # The secret comes from a file, as a Docker or Kubernetes secret would.
    secret_file = root / "s3-secret"
    secret_file.write_text(MINIO_PASSWORD + "\n")
    config = s3_config(minio.endpoint, bucket, f'secret_key_file: "{secret_file}"')
    stack = start_stack(root, pg, redis, config=config)
    yield stack, bucket
    _stop(stack)


@pytest.fixture(scope="module")
def databases(pg: PostgresCluster) -> dict[str, str]:
    pg.create_database("shop_s3")
    pg.psql(SEED_SQL, "shop_s3")
    pg.create_database("big_s3")
    pg.psql(BIG_SQL, "big_s3")
    return {"shop_s3": CONTENT_QUERY, "big_s3": BIG_QUERY}


@pytest.mark.parametrize(("database", "compression"), [("shop_s3", "gzip"),
                                                       ("big_s3", "none")])
def test_backup_lands_in_minio_downloads_and_restores(
    s3_stack: tuple[Stack, str], minio: MinioServer, pg: PostgresCluster,
    databases: dict[str, str], database: str, compression: str, tmp_path: Path,
) -> None:
    stack, bucket = s3_stack
    api = stack.client
    ready = api.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["storage"] == "ok"

    db_id = api.register_postgres(pg, database, compression=compression)
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "completed", backup["error"]
    assert backup["storage"] == "s3"

    # The object and its sidecar are in the bucket, under the prefix, with checksums.
    s3 = minio.client()
    key = f"{PREFIX}/{backup['storage_key']}"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == backup["size_bytes"]
    # A backup sent in one PutObject carries its checksums as object metadata for free; a
    # multipart one does not (no server-side copy unless object_metadata: true). The
    # sidecar has them either way.
    checksums = {"checksum-md5": backup["checksum_md5"],
                 "checksum-sha256": backup["checksum_sha256"]}
    assert head["Metadata"] == (checksums if backup["size_bytes"] < DEFAULT_PART_SIZE else {})
    sidecar = json.loads(s3.get_object(Bucket=bucket, Key=key + ".json")["Body"].read())
    assert sidecar["checksum_md5"] == backup["checksum_md5"]
    assert minio.pending_uploads(bucket) == []

    download = api.get(f"/backups/{backup['id']}/download", stream=True)
    assert download.status_code == 200
    assert int(download.headers["Content-Length"]) == backup["size_bytes"]
    md5 = hashlib.md5()
    dump = tmp_path / "restore.dump.raw"
    with dump.open("wb") as handle:
        for chunk in download.iter_content(1024 * 1024):
            md5.update(chunk)
            handle.write(chunk)
    assert md5.hexdigest() == backup["checksum_md5"]

    restored = tmp_path / "restore.dump"
    restored.write_bytes(_decompress(dump.read_bytes(), compression))
    target = f"{database}_restored"
    _pg_restore(pg, restored, target)
    query = databases[database]
    assert pg.psql(query, target) == pg.psql(query, database)

    assert api.delete(f"/backups/{backup['id']}").status_code == 204
    assert not [k for k in minio.keys(bucket) if k.startswith(key)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BAD_CASES = ["wrong credentials", "missing bucket", "unreachable endpoint"]


@pytest.fixture(scope="module", params=BAD_CASES)
def bad_stack(request: pytest.FixtureRequest, workdir: Path, pg: PostgresCluster,
              redis: Redis, minio: MinioServer) -> Iterator[tuple[Stack, str, str, str, str]]:
    """A stack whose S3 storage is unusable; yields it, bucket, endpoint, reason, bucket."""
    case = request.param
    bucket = minio.make_bucket(f"bad-{BAD_CASES.index(case)}")
    endpoint, secret, used_bucket = minio.endpoint, MINIO_PASSWORD, bucket
    if case == "wrong credentials":
        secret, reason = WRONG_SECRET, "S3 rejected the credentials (SignatureDoesNotMatch)"
    elif case == "missing bucket":
        used_bucket, reason = "never-created", "does not exist"
    else:
        endpoint, reason = f"http://127.0.0.1:{_closed_port()}", "cannot reach the S3 endpoint"
    config = s3_config(endpoint, used_bucket, f'secret_key: "{secret}"')
    stack = start_stack(workdir / f"bad-s3-{BAD_CASES.index(case)}", pg, redis, config=config)
    yield stack, used_bucket, endpoint, reason, bucket
    _stop(stack)


def test_unusable_s3_is_reported_by_ready_and_fails_backups_readably(
    bad_stack: tuple[Stack, str, str, str, str], minio: MinioServer, pg: PostgresCluster,
    databases: dict[str, str],
) -> None:
    stack, used_bucket, endpoint, reason, real_bucket = bad_stack
    api = stack.client
    ready = api.get("/ready")
    assert ready.status_code == 503
    storage_check = ready.json()["checks"]["storage"]
    for text in (reason, f"'{used_bucket}'", endpoint):
        assert text in storage_check
    assert storage_check in ready.json()["message"]

    db_id = api.register_postgres(pg, "shop_s3")
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "failed"
    error = backup["error"]
    for text in (reason, f"'{used_bucket}'", endpoint):
        assert text in error
    assert backup["storage_key"] is None and backup["checksum_md5"] is None
    for secret in (WRONG_SECRET, MINIO_PASSWORD):
        assert secret not in error and secret not in ready.text and secret not in stack.logs()

    # Nothing was left behind: no object, no pending upload, no bucket created.
    assert minio.keys(real_bucket) == [] and minio.pending_uploads(real_bucket) == []
    assert not minio.bucket_exists("never-created")
