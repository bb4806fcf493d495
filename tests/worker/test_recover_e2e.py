"""Recovery with nothing but the storage: backups taken through a stack, the metadata DB
dropped, then `backup-api recover list|restore|import` run as an operator would, with no
metadata DB, broker or API (local storage, and MinIO with an encrypted backup)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.age import AgeKey, make_key, watch_cmdlines
from tests.conftest import STACK_CONFIG, Client, Stack, start_stack
from tests.minio import MINIO_PASSWORD, MINIO_USER, MinioServer
from tests.services import (
    PG_PASSWORD,
    PG_USER,
    REPO,
    TEST_API_KEY,
    PostgresCluster,
    Process,
    Redis,
    free_port,
    wait_http,
)
from tests.worker.test_backup_postgres_e2e import CONTENT_QUERY, SEED_SQL
from tests.worker.test_backup_s3_e2e import BIG_QUERY, BIG_SQL, PREFIX, s3_config

# What a shell on the rescue machine does not have: the service's own settings.
SERVICE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "BACKUP_API_CONFIG",
                     "BACKUP_API_SECRET_KEY", "BACKUP_API_SECRET_KEY_FILE", "PGPASSWORD",
                     "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def recover(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``backup-api recover ARGV`` in an empty directory with only ``env`` added."""
    cwd.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    return subprocess.run(
        [sys.executable, "-m", "cli", "recover", *argv], cwd=cwd, capture_output=True,
        text=True, timeout=600,
        env={**base, "PYTHONPATH": str(REPO), "BACKUP_API_DATA_DIR": str(cwd / "data"), **env})


def take_backup(api: Client, database_id: str) -> dict[str, Any]:
    created = api.post("/backups", json={"database_id": database_id})
    assert created.status_code == 202, created.text
    backup = api.wait_backup(created.json()["id"], timeout=300)
    assert backup["status"] == "completed", backup["error"]
    return backup


def drop_metadata_db(stack: Stack, pg: PostgresCluster) -> None:
    """Stop the service and lose its metadata DB for good."""
    for process in [stack.api, *stack.workers]:
        process.stop()
    name = stack.env["DATABASE_URL"].rsplit("/", 1)[1]
    pg.psql(f'DROP DATABASE "{name}" WITH (FORCE)')


def target_url(pg: PostgresCluster, database: str) -> str:
    """The restore target, password left out: it comes from PGPASSWORD."""
    return f"postgresql://{PG_USER}@127.0.0.1:{pg.port}/{database}"


def start_api(stack: Stack, database_url: str, name: str) -> tuple[Process, Client]:
    port = free_port()
    api = Process(name, ["api", "--host", "127.0.0.1", "--port", str(port)],
                  {**stack.env, "DATABASE_URL": database_url}, stack.root / f"{name}.log").start()
    client = Client(f"http://127.0.0.1:{port}")
    wait_http(client.base + "/health", process=api)
    return api, client


def download_md5(api: Client, backup_id: str) -> str:
    response = api.get(f"/backups/{backup_id}/download", stream=True)
    assert response.status_code == 200, response.text
    md5 = hashlib.md5()
    for chunk in response.iter_content(1024 * 1024):
        md5.update(chunk)
    return md5.hexdigest()


# --- local storage ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_run(workdir: Path, pg: PostgresCluster, redis: Redis
              ) -> Iterator[tuple[Stack, dict[str, dict[str, Any]], dict[str, Any]]]:
    """Three backups of two databases and a package, then the metadata DB dropped."""
    pg.create_database("rec_big")
    pg.psql(BIG_SQL, "rec_big")
    pg.create_database("rec_shop")
    pg.psql(SEED_SQL, "rec_shop")
    stack = start_stack(workdir / "recover-local", pg, redis, config=STACK_CONFIG)
    api = stack.client
    # compression none: ~40 MB stored, read back in forty 1 MiB chunks.
    big = api.register_postgres(pg, "rec_big", id="rec-big", name="Big one",
                                compression="none")
    shop = api.register_postgres(pg, "rec_shop", id="rec-shop")
    backups = {"big": take_backup(api, big), "shop": take_backup(api, shop),
               "shop2": take_backup(api, shop)}
    created = api.post("/packages/create", json={"database_ids": [shop]})
    assert created.status_code == 202, created.text
    package = api.wait_done(f"/packages/{created.json()['id']}", timeout=300)
    assert package["status"] == "completed", package["error"]
    drop_metadata_db(stack, pg)
    yield stack, backups, package
    for process in [stack.api, *stack.workers]:
        process.stop()


def test_list_describes_every_backup_from_the_files_alone(
        local_run: tuple[Stack, dict[str, dict[str, Any]], dict[str, Any]],
        tmp_path: Path) -> None:
    stack, backups, package = local_run
    storage = f"file://{stack.storage_dir}"
    listed = recover(tmp_path, "list", "--storage", storage)
    assert listed.returncode == 0, listed.stderr
    for backup in backups.values():
        line = next(line for line in listed.stdout.splitlines() if backup["storage_key"] in line)
        assert backup["database_id"] in line and backup["checksum_md5"] in line
        assert "postgres" in line and "none" in line  # engine; encryption
    assert package["id"] in listed.stdout
    assert listed.stderr == ""  # nothing odd in this storage

    as_json = recover(tmp_path, "list", "--storage", storage, "--json", "--database", "rec-big")
    assert as_json.returncode == 0, as_json.stderr
    (found,) = json.loads(as_json.stdout)["backups"]
    big = backups["big"]
    assert found["backup_id"] == big["id"]
    assert (found["size_bytes"], found["checksum_md5"], found["checksum_sha256"]) == (
        big["size_bytes"], big["checksum_md5"], big["checksum_sha256"])
    assert found["compression"] == "none" and found["encrypted"] is False
    assert found["source"]["database_name"] == "rec_big"
    assert found["source"]["name"] == "Big one"
    assert PG_PASSWORD not in as_json.stdout + listed.stdout
    # Nothing was written beside the operator: no secret key generated, no metadata DB.
    assert not (tmp_path / "data").exists()


def test_restore_streams_into_a_fresh_database_with_checksums(
        local_run: tuple[Stack, dict[str, dict[str, Any]], dict[str, Any]],
        pg: PostgresCluster, tmp_path: Path) -> None:
    stack, backups, _ = local_run
    storage = f"file://{stack.storage_dir}"
    pg.create_database("rec_big_copy")
    with watch_cmdlines([PG_PASSWORD]) as seen:
        restored = recover(tmp_path, "restore", backups["big"]["storage_key"],
                           "--storage", storage, "--to", target_url(pg, "rec_big_copy"),
                           PGPASSWORD=PG_PASSWORD)
    assert restored.returncode == 0, restored.stderr
    assert "MD5 " + backups["big"]["checksum_md5"] in restored.stdout
    assert pg.psql(BIG_QUERY, "rec_big_copy") == pg.psql(BIG_QUERY, "rec_big")
    assert "pg_restore" in seen.programs and seen.leaks == []
    assert PG_PASSWORD not in restored.stdout + restored.stderr

    # By backup id (a prefix), gzip-compressed, into another fresh database.
    pg.create_database("rec_shop_copy")
    by_id = recover(tmp_path, "restore", backups["shop2"]["id"][:8], "--storage", storage,
                    "--to", target_url(pg, "rec_shop_copy"), PGPASSWORD=PG_PASSWORD)
    assert by_id.returncode == 0, by_id.stderr
    assert pg.psql(CONTENT_QUERY, "rec_shop_copy") == pg.psql(CONTENT_QUERY, "rec_shop")

    # A target holding data is not replaced unless asked.
    again = recover(tmp_path, "restore", backups["shop2"]["id"], "--storage", storage,
                    "--to", target_url(pg, "rec_shop_copy"), PGPASSWORD=PG_PASSWORD)
    assert again.returncode == 1
    assert "is not empty; repeat with --overwrite" in again.stderr
    forced = recover(tmp_path, "restore", backups["shop2"]["id"], "--storage", storage,
                     "--to", target_url(pg, "rec_shop_copy"), "--overwrite",
                     PGPASSWORD=PG_PASSWORD)
    assert forced.returncode == 0, forced.stderr
    assert pg.psql(CONTENT_QUERY, "rec_shop_copy") == pg.psql(CONTENT_QUERY, "rec_shop")


def test_a_damaged_artifact_fails_the_restore_loudly_and_changes_nothing(
        local_run: tuple[Stack, dict[str, dict[str, Any]], dict[str, Any]],
        pg: PostgresCluster, tmp_path: Path) -> None:
    stack, backups, _ = local_run
    big = backups["big"]
    artifact = stack.storage_dir / big["storage_key"]
    middle = artifact.stat().st_size // 2
    with artifact.open("r+b") as handle:
        handle.seek(middle)
        original = handle.read(16)
        handle.seek(middle)
        handle.write(bytes(b ^ 0xFF for b in original))
    try:
        pg.create_database("rec_big_damaged")
        failed = recover(tmp_path, "restore", big["storage_key"], "--storage",
                         f"file://{stack.storage_dir}", "--to",
                         target_url(pg, "rec_big_damaged"), PGPASSWORD=PG_PASSWORD)
    finally:
        with artifact.open("r+b") as handle:
            handle.seek(middle)
            handle.write(original)
    assert failed.returncode == 1
    assert "corrupt: checksum mismatch" in failed.stderr
    assert big["checksum_md5"] in failed.stderr  # what the sidecar recorded
    # pg_restore never saw the end of its input: its single transaction rolled back.
    assert pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                   "rec_big_damaged") == "0"


def test_import_rebuilds_the_rows_and_the_api_serves_them_again(
        local_run: tuple[Stack, dict[str, dict[str, Any]], dict[str, Any]],
        pg: PostgresCluster, tmp_path: Path) -> None:
    stack, backups, package = local_run
    pg.create_database("rec_meta_new")
    database_url = pg.url("rec_meta_new")
    env = {"DATABASE_URL": database_url, "BACKUP_API_SECRET_KEY": stack.env[
        "BACKUP_API_SECRET_KEY"], "TEST_PG_PORT": stack.env["TEST_PG_PORT"],
           "TEST_PG_PASSWORD": PG_PASSWORD, "TEST_API_KEY": TEST_API_KEY,
           # The config's local storage has no path: it is under the service's data dir.
           "BACKUP_API_DATA_DIR": str(stack.root / "data")}
    # The config is given as the storage: its storage section and its databases are used.
    first = recover(tmp_path, "import", "--storage", stack.env["BACKUP_API_CONFIG"], **env)
    assert first.returncode == 0, first.stderr
    assert "imported 3 backup(s), 1 package(s) and 2 database(s)" in first.stdout
    second = recover(tmp_path, "import", "--storage", stack.env["BACKUP_API_CONFIG"], **env)
    assert second.returncode == 0, second.stderr
    assert "imported 0 backup(s), 0 package(s) and 0 database(s); 4 already there" \
        in second.stdout

    api_process, api = start_api(stack, database_url, "api-after-import")
    try:
        listed = api.get("/backups", params={"page_size": 50}).json()
        by_id = {b["id"]: b for b in listed}
        assert set(by_id) == {b["id"] for b in backups.values()}
        for backup in backups.values():
            row = by_id[backup["id"]]
            for field in ("database_id", "engine", "status", "size_bytes", "compression",
                          "checksum_md5", "checksum_sha256", "storage", "storage_key",
                          "created_at"):
                assert row[field] == backup[field], field
        assert download_md5(api, backups["big"]["id"]) == backups["big"]["checksum_md5"]
        database = api.get("/databases/rec-big").json()
        assert (database["name"], database["database_name"], database["port"]) == (
            "Big one", "rec_big", pg.port)
        assert database["enabled"] is False and database["password_set"] is False
        assert api.get(f"/packages/{package['id']}").json()["checksum_md5"] == \
            package["checksum_md5"]
    finally:
        api_process.stop()


# --- MinIO, encrypted ------------------------------------------------------------------


ENCRYPTION = """
  encryption:
    type: age
    recipients: ["@RECIPIENT@"]
"""


@pytest.fixture(scope="module")
def recover_key(workdir: Path) -> AgeKey:
    root = workdir / "recover-keys"
    root.mkdir(exist_ok=True)
    return make_key(root / "offline.txt")


@pytest.fixture(scope="module")
def s3_run(workdir: Path, pg: PostgresCluster, redis: Redis, minio: MinioServer,
           recover_key: AgeKey) -> Iterator[tuple[Stack, str, dict[str, Any], dict[str, Any]]]:
    """An encrypted big backup and a plain small one in MinIO; the metadata DB dropped."""
    bucket = minio.make_bucket("recover-backups")
    config = s3_config(minio.endpoint, bucket, f'secret_key: "{MINIO_PASSWORD}"')
    config = config.replace("  max_parallel_jobs: 2\n", "  max_parallel_jobs: 2"
                            + ENCRYPTION.replace("@RECIPIENT@", recover_key.recipient))
    pg.create_database("rec_s3_big")
    pg.psql(BIG_SQL, "rec_s3_big")
    pg.create_database("rec_s3_shop")
    pg.psql(SEED_SQL, "rec_s3_shop")
    stack = start_stack(workdir / "recover-s3", pg, redis, config=config)
    api = stack.client
    big = take_backup(api, api.register_postgres(pg, "rec_s3_big", id="rec-s3-big",
                                                 compression="none"))
    shop = take_backup(api, api.register_postgres(pg, "rec_s3_shop", id="rec-s3-shop"))
    drop_metadata_db(stack, pg)
    yield stack, f"s3://{bucket}/{PREFIX}?endpoint={minio.endpoint}", big, shop
    for process in [stack.api, *stack.workers]:
        process.stop()


AWS = {"AWS_ACCESS_KEY_ID": MINIO_USER, "AWS_SECRET_ACCESS_KEY": MINIO_PASSWORD}


def test_s3_list_and_encrypted_restore_with_the_identity_file(
        s3_run: tuple[Stack, str, dict[str, Any], dict[str, Any]], pg: PostgresCluster,
        recover_key: AgeKey, tmp_path: Path) -> None:
    _, storage, big, shop = s3_run
    listed = recover(tmp_path, "list", "--storage", storage, "--json", **AWS)
    assert listed.returncode == 0, listed.stderr
    found = {b["backup_id"]: b for b in json.loads(listed.stdout)["backups"]}
    assert set(found) == {big["id"], shop["id"]}
    assert found[big["id"]]["encrypted"] is True
    assert found[big["id"]]["encryption"]["recipients"] == [recover_key.recipient]
    assert found[big["id"]]["key"] == big["storage_key"]
    assert found[big["id"]]["checksum_sha256"] == big["checksum_sha256"]

    # Without credentials the storage says so, naming the bucket, never a secret.
    anonymous = recover(tmp_path, "list", "--storage", storage,
                        AWS_EC2_METADATA_DISABLED="true")
    assert anonymous.returncode == 1 and "recover-backups" in anonymous.stderr
    # Credentials in the URL would show in ps: refused.
    in_url = recover(tmp_path, "list", "--storage",
                     storage.replace("s3://", f"s3://{MINIO_USER}:{MINIO_PASSWORD}@"))
    assert in_url.returncode == 2 and "AWS_ACCESS_KEY_ID" in in_url.stderr
    assert MINIO_PASSWORD not in in_url.stderr

    pg.create_database("rec_s3_big_copy")
    without_key = recover(tmp_path, "restore", big["id"], "--storage", storage, "--to",
                          target_url(pg, "rec_s3_big_copy"), PGPASSWORD=PG_PASSWORD, **AWS)
    assert without_key.returncode == 1
    assert "encrypted with age" in without_key.stderr and "--identity-file" in without_key.stderr
    wrong = make_key(tmp_path / "wrong.txt")
    with_wrong = recover(tmp_path, "restore", big["id"], "--storage", storage, "--to",
                         target_url(pg, "rec_s3_big_copy"), "--identity-file", str(wrong.path),
                         PGPASSWORD=PG_PASSWORD, **AWS)
    assert with_wrong.returncode == 1 and "none of the keys" in with_wrong.stderr

    restored = recover(tmp_path, "restore", big["id"], "--storage", storage, "--to",
                       target_url(pg, "rec_s3_big_copy"), "--identity-file",
                       str(recover_key.path), PGPASSWORD=PG_PASSWORD, **AWS)
    assert restored.returncode == 0, restored.stderr
    assert pg.psql(BIG_QUERY, "rec_s3_big_copy") == pg.psql(BIG_QUERY, "rec_s3_big")
    output = restored.stdout + restored.stderr
    assert recover_key.secret not in output and PG_PASSWORD not in output


def test_s3_import_into_a_new_metadata_db(
        s3_run: tuple[Stack, str, dict[str, Any], dict[str, Any]], pg: PostgresCluster,
        tmp_path: Path) -> None:
    stack, storage, big, shop = s3_run
    pg.create_database("rec_s3_meta_new")
    database_url = pg.url("rec_s3_meta_new")
    env = {"DATABASE_URL": database_url,
           "BACKUP_API_SECRET_KEY": stack.env["BACKUP_API_SECRET_KEY"], **AWS}
    imported = recover(tmp_path, "import", "--storage", storage, **env)
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 backup(s), 0 package(s) and 2 database(s)" in imported.stdout

    api_process, api = start_api(stack, database_url, "api-after-s3-import")
    try:
        rows = {b["id"]: b for b in api.get("/backups").json()}
        assert set(rows) == {big["id"], shop["id"]}
        assert rows[big["id"]]["storage"] == "s3"
        assert rows[big["id"]]["encryption"] == big["encryption"]
        assert download_md5(api, shop["id"]) == shop["checksum_md5"]
        assert download_md5(api, big["id"]) == big["checksum_md5"]
    finally:
        api_process.stop()
