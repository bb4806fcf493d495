"""zstd with worker threads (``global.zstd_threads: -1``) through the API: the artifact is
one checksummed frame the zstd command reads, it verifies and restores, and damage in
its middle is caught by the zstd frame itself, by verify and by restore alike."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, Stack, start_stack
from tests.services import PostgresCluster, Redis

TIMEOUT = 300
CONFIG = """
global:
  compression: zstd
  zstd_level: 5
  zstd_threads: -1
  max_parallel_jobs: 2
storage:
  type: local
"""
# ~35 MB of dump (base64 of random bytes, which zstd shrinks by a quarter only): several
# of the multi-threaded compressor's jobs, each compressed by a thread of its own.
SEED = """
CREATE TABLE noise (id int PRIMARY KEY, blob text);
INSERT INTO noise
SELECT g, translate(encode(decode(md5(random()::text) || md5(random()::text)
    || md5(random()::text) || md5(random()::text) || md5(random()::text)
    || md5(random()::text), 'hex'), 'base64'), E'\\n', '')
FROM generate_series(1, 250000) g;
"""
CONTENT = "SELECT count(*), md5(string_agg(blob, '' ORDER BY id)) FROM noise"


@pytest.fixture(scope="module")
def zstd_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    stack = start_stack(workdir / "zstd-threads", pg, redis, config=CONFIG)
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()


@pytest.fixture(scope="module")
def backup(zstd_stack: Stack, pg: PostgresCluster) -> dict[str, Any]:
    pg.create_database("zstd_threads_src")
    pg.psql(SEED, "zstd_threads_src")
    pg.create_database("zstd_threads_target")
    api = zstd_stack.client
    db_id = api.register_postgres(pg, "zstd_threads_src", id="zstd-threads-src")
    api.register_postgres(pg, "zstd_threads_target", id="zstd-threads-target",
                          restore_target=True)
    row = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"],
                          TIMEOUT)
    assert row["status"] == "completed", row["error"]
    return row


def _job(api: Client, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 202, response.text
    return api.wait_done(f"/restores/{response.json()['id']}", TIMEOUT)


def _record(stack: Stack, pg: PostgresCluster, backup_id: str, md5: str, sha256: str) -> None:
    meta = stack.env["DATABASE_URL"].rsplit("/", 1)[1]
    pg.psql(f"UPDATE backups SET checksum_md5 = '{md5}', checksum_sha256 = '{sha256}' "
            f"WHERE id = '{backup_id}'", meta)


def test_a_threaded_zstd_backup_is_one_checked_frame_and_restores(
        zstd_stack: Stack, pg: PostgresCluster, backup: dict[str, Any]) -> None:
    api = zstd_stack.client
    assert backup["compression"] == "zstd"
    assert backup["size_bytes"] > 20_000_000
    path = zstd_stack.storage_dir / backup["storage_key"]
    listing = subprocess.run(["zstd", "-lv", str(path)], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "# Zstandard Frames: 1" in listing.stdout and "Check: XXH64" in listing.stdout
    assert subprocess.run(["zstd", "-tq", str(path)]).returncode == 0

    verified = _job(api, f"/backups/{backup['id']}/verify")
    assert verified["status"] == "completed", verified["error"]
    restored = _job(api, f"/backups/{backup['id']}/restore",
                    {"target_database_id": "zstd-threads-target",
                     "confirm": "zstd-threads-target"})
    assert restored["status"] == "completed", restored["error"]
    assert pg.psql(CONTENT, "zstd_threads_target") == pg.psql(CONTENT, "zstd_threads_src")


def test_damage_in_the_middle_is_caught_by_the_zstd_frame(
        zstd_stack: Stack, pg: PostgresCluster, backup: dict[str, Any],
        tmp_path: Path) -> None:
    """A flipped byte mid-artifact, with the row's checksums rewritten to the damaged
    file's (as if the damage came before hashing): only zstd's own check is left."""
    api = zstd_stack.client
    path = zstd_stack.storage_dir / backup["storage_key"]
    sound = path.read_bytes()
    damaged = bytearray(sound)
    damaged[len(damaged) // 2] ^= 0xFF
    path.write_bytes(bytes(damaged))
    _record(zstd_stack, pg, backup["id"], hashlib.md5(damaged).hexdigest(),
            hashlib.sha256(damaged).hexdigest())
    pg.psql("DROP TABLE IF EXISTS noise; CREATE TABLE keepme (x int); "
            "INSERT INTO keepme VALUES (7)", "zstd_threads_target")
    try:
        assert subprocess.run(["zstd", "-tq", str(path)]).returncode != 0
        verified = _job(api, f"/backups/{backup['id']}/verify")
        assert verified["status"] == "failed"
        assert verified["error"].startswith("corrupt: the zstd stream is corrupt: "), \
            verified["error"]
        restored = _job(api, f"/backups/{backup['id']}/restore",
                        {"target_database_id": "zstd-threads-target",
                         "confirm": "zstd-threads-target"})
        assert restored["status"] == "failed"
        assert restored["error"] == verified["error"]
        # Refused before pg_restore saw the end of its input: the target is untouched.
        assert pg.psql("SELECT x FROM keepme", "zstd_threads_target") == "7"
        assert pg.psql("SELECT to_regclass('public.noise') IS NULL",
                       "zstd_threads_target") == "t"
    finally:
        path.write_bytes(sound)
        _record(zstd_stack, pg, backup["id"], backup["checksum_md5"],
                backup["checksum_sha256"])
