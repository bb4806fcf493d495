"""An age-encrypted backup in a real MinIO: multipart upload, download, `age -d`, restore,
then verify and restore through the API with the identity file."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.age import AgeKey, age_decrypt, make_key
from tests.conftest import Stack, start_stack
from tests.minio import MINIO_PASSWORD, MinioServer
from tests.services import PostgresCluster, Redis
from tests.worker.test_backup_postgres_e2e import _pg_restore
from tests.worker.test_backup_s3_e2e import BIG_QUERY, BIG_SQL, PREFIX, s3_config

ENCRYPTION = """
  encryption:
    type: age
    recipients: ["@OPS@", "@RESTORE@"]
    identity_file: "@RESTORE_FILE@"
"""


@pytest.fixture(scope="module")
def s3_keys(workdir: Path) -> tuple[AgeKey, AgeKey]:
    """The operators' key (kept offline) and the restore key the workers hold."""
    root = workdir / "s3-age-keys"
    root.mkdir(exist_ok=True)
    return make_key(root / "ops.txt"), make_key(root / "restore.txt")


@pytest.fixture(scope="module")
def enc_s3_stack(workdir: Path, pg: PostgresCluster, redis: Redis, minio: MinioServer,
                 s3_keys: tuple[AgeKey, AgeKey]) -> Iterator[tuple[Stack, str]]:
    ops, restore = s3_keys
    bucket = minio.make_bucket("enc-backups")
    config = s3_config(minio.endpoint, bucket, f'secret_key: "{MINIO_PASSWORD}"')
    encryption = (ENCRYPTION.replace("@OPS@", ops.recipient)
                  .replace("@RESTORE@", restore.recipient)
                  .replace("@RESTORE_FILE@", str(restore.path)))
    config = config.replace("  max_parallel_jobs: 2\n", "  max_parallel_jobs: 2" + encryption)
    pg.create_database("enc_big_s3")
    pg.psql(BIG_SQL, "enc_big_s3")
    stack = start_stack(workdir / "enc-s3-stack", pg, redis, config=config)
    yield stack, bucket
    for process in [stack.api, *stack.workers]:
        process.stop()


@pytest.mark.requires_peer("age")
def test_encrypted_backup_in_minio_opens_with_age_and_restores(
    enc_s3_stack: tuple[Stack, str], minio: MinioServer, pg: PostgresCluster,
    s3_keys: tuple[AgeKey, AgeKey], tmp_path: Path,
) -> None:
    stack, bucket = enc_s3_stack
    ops, restore = s3_keys
    api = stack.client
    # compression none: ~40 MB of dump, so the encrypted stream goes up in several parts.
    db_id = api.register_postgres(pg, "enc_big_s3", compression="none")
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"],
                             timeout=300)
    assert backup["status"] == "completed", backup["error"]
    assert backup["encryption"] == {"type": "age",
                                    "recipients": [ops.recipient, restore.recipient]}
    assert backup["storage_key"].endswith(".dump.age")
    assert backup["size_bytes"] > 30 * 1024 * 1024

    s3 = minio.client()
    key = f"{PREFIX}/{backup['storage_key']}"
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == backup["size_bytes"]
    assert head["Metadata"] == {}  # multipart: no metadata copy (object_metadata: false)
    first = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-21")["Body"].read()
    assert first == b"age-encryption.org/v1\n"
    sidecar = json.loads(s3.get_object(Bucket=bucket, Key=key + ".json")["Body"].read())
    assert sidecar["encryption"] == backup["encryption"]
    assert sidecar["checksum_md5"] == backup["checksum_md5"]
    assert minio.pending_uploads(bucket) == []

    download = api.get(f"/backups/{backup['id']}/download", stream=True)
    assert download.status_code == 200
    encrypted = tmp_path / "big.dump.age"
    md5 = hashlib.md5()
    with encrypted.open("wb") as handle:
        for chunk in download.iter_content(1024 * 1024):
            md5.update(chunk)
            handle.write(chunk)
    assert md5.hexdigest() == backup["checksum_md5"]

    # The operators' key opens it with the age command line (the artifact is not
    # compressed, so no gunzip here).
    dump = tmp_path / "big.dump"
    opened = age_decrypt(encrypted, ops, dump)
    assert opened.returncode == 0, opened.stderr
    _pg_restore(pg, dump, "enc_big_s3_copy")
    assert pg.psql(BIG_QUERY, "enc_big_s3_copy") == pg.psql(BIG_QUERY, "enc_big_s3")

    # The workers hold the other key: verify and restore through the API use it.
    verified = api.post(f"/backups/{backup['id']}/verify")
    assert verified.status_code == 202
    result = api.wait_done(f"/restores/{verified.json()['id']}", timeout=300)
    assert result["status"] == "completed", result["error"]
    assert result["details"]["checksum_md5"] == backup["checksum_md5"]

    pg.create_database("enc_big_s3_target")
    target = api.register_postgres(pg, "enc_big_s3_target", restore_target=True)
    restored = api.post(f"/backups/{backup['id']}/restore",
                        json={"target_database_id": target})
    assert restored.status_code == 202
    result = api.wait_done(f"/restores/{restored.json()['id']}", timeout=300)
    assert result["status"] == "completed", result["error"]
    assert pg.psql(BIG_QUERY, "enc_big_s3_target") == pg.psql(BIG_QUERY, "enc_big_s3")
    for secret in (ops.secret, restore.secret):
        assert secret not in stack.logs()
