"""Verify and restore at real sizes: every byte of a ≥ 50 MB artifact is read and checked.

A verify that stopped reading where its checker stopped (``pg_restore --list`` reads
the table of contents only) called every PostgreSQL backup over 1 MiB corrupt. Here
one big database is backed up with each compression; the intact artifact must verify,
and a flipped byte or a cut in the middle must be reported corrupt, by verify and by
restore alike, naming the check that failed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from shared.compression import make_compressor
from shared.context import Context
from shared.engines import DumpCommand
from shared.engines.base import ToolFailed
from shared.errors import BackupError
from shared.models import Backup
from shared.storage.local import LocalStorage
from tests.conftest import Client, Stack
from tests.services import PostgresCluster
from worker.restore import _stream

MiB = 1024 * 1024
COMPRESSIONS = ["gzip", "zstd", "none"]
TIMEOUT = 600

# ~77 MB of dump: base64 of random bytes, which gzip and zstd shrink by a quarter only.
SEED = """
CREATE TABLE noise (id int PRIMARY KEY, blob text);
INSERT INTO noise
SELECT g, translate(encode(decode(md5(random()::text) || md5(random()::text)
    || md5(random()::text) || md5(random()::text) || md5(random()::text)
    || md5(random()::text), 'hex'), 'base64'), E'\\n', '')
FROM generate_series(1, 550000) g;
"""
TARGET_SEED = "CREATE TABLE keepme (x int); INSERT INTO keepme VALUES (42);"


# --- the streaming itself, with a stand-in reader --------------------------------------


def _artifact(tmp_path: Path, compression: str, payload: bytes) -> tuple[Context, Backup]:
    compressor = make_compressor(compression)
    stored = b"".join(compressor.compress(payload[i:i + MiB])
                      for i in range(0, len(payload), MiB)) + compressor.flush()
    key = f"db/artifact-{compression}"
    (tmp_path / "db").mkdir(exist_ok=True)
    (tmp_path / key).write_bytes(stored)
    backup = Backup(storage_key=key, compression=compression, size_bytes=len(stored),
                    checksum_md5=hashlib.md5(stored).hexdigest(),
                    checksum_sha256=hashlib.sha256(stored).hexdigest())
    return cast(Context, SimpleNamespace(storage=LocalStorage(str(tmp_path)))), backup


def _payload() -> bytes:
    return os.urandom(3 * MiB) + b"compressible " * 300_000


def _capture(out: Path) -> DumpCommand:
    """A reader that writes what it read to ``out`` only once it saw the end of its input."""
    code = f"import sys; data = sys.stdin.buffer.read(); open({str(out)!r}, 'wb').write(data)"
    return DumpCommand(argv=[sys.executable, "-c", code])


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_checksums_cover_the_artifact_when_the_reader_stops_early(
        tmp_path: Path, compression: str) -> None:
    ctx, backup = _artifact(tmp_path, compression, _payload())
    digests = _stream(ctx, backup, DumpCommand(argv=["head", "-c", "1"]))
    assert (digests.md5, digests.sha256) == (backup.checksum_md5, backup.checksum_sha256)
    assert digests.size == backup.size_bytes


def test_a_reader_that_fails_on_sound_bytes_is_reported(tmp_path: Path) -> None:
    ctx, backup = _artifact(tmp_path, "gzip", _payload())
    failing = DumpCommand(argv=["sh", "-c", "head -c 10 >/dev/null; echo bad archive >&2; exit 3"])
    with pytest.raises(ToolFailed) as failed:
        _stream(ctx, backup, failing)
    assert (failed.value.returncode, failed.value.reason) == (3, "bad archive")


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_the_reader_gets_the_whole_dump_of_a_sound_artifact(
        tmp_path: Path, compression: str) -> None:
    payload = _payload()
    ctx, backup = _artifact(tmp_path, compression, payload)
    _stream(ctx, backup, _capture(tmp_path / "read"))
    assert (tmp_path / "read").read_bytes() == payload


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_a_corrupt_artifact_never_reaches_the_readers_end(
        tmp_path: Path, compression: str, damage: str) -> None:
    ctx, backup = _artifact(tmp_path, compression, _payload())
    path = tmp_path / str(backup.storage_key)
    _damage(path, damage)
    with pytest.raises(BackupError) as refused:
        _stream(ctx, backup, _capture(tmp_path / "read"))
    assert refused.value.message.startswith("corrupt: checksum mismatch: the stored artifact "
                                            f"has MD5 {hashlib.md5(path.read_bytes()).hexdigest()}")
    if compression != "none" and damage == "cut":
        assert f"the {compression} stream is truncated" in refused.value.message
    if compression == "gzip" and damage == "flip":
        assert "the gzip stream is corrupt" in refused.value.message
    # Killed before its input ended: a pg_restore --single-transaction would not commit.
    assert not (tmp_path / "read").exists()


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        del data[len(data) // 2:]
    path.write_bytes(bytes(data))


# --- through the API, on a real ≥ 50 MB backup per compression ---------------------------


def _restore_job(api: Client, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 202, response.text
    return api.wait_done(f"/restores/{response.json()['id']}", TIMEOUT)


@pytest.fixture(scope="module")
def big_backups(api: Client, pg: PostgresCluster) -> dict[str, dict[str, Any]]:
    """One big source database, backed up once with each compression."""
    started = time.monotonic()
    pg.create_database("verify_big")
    pg.psql(SEED, "verify_big")
    pending = {}
    for compression in COMPRESSIONS:
        db_id = api.register_postgres(pg, "verify_big", id=f"verify-big-{compression}",
                                      compression=compression)
        pending[compression] = api.post("/backups", json={"database_id": db_id}).json()["id"]
    backups = {name: api.wait_backup(backup_id, TIMEOUT) for name, backup_id in pending.items()}
    for name, backup in backups.items():
        assert backup["status"] == "completed", backup["error"]
        assert backup["compression"] == name
        assert backup["size_bytes"] >= 50_000_000, (name, backup["size_bytes"])
        print(f"{name}: {backup['size_bytes']} bytes")
    print(f"seeded and backed up in {time.monotonic() - started:.0f}s")
    return backups


@pytest.fixture(scope="module")
def target(api: Client, pg: PostgresCluster) -> str:
    """A database a corrupt backup is restored over, whose contents must survive."""
    pg.create_database("verify_big_target")
    pg.psql(TARGET_SEED, "verify_big_target")
    return api.register_postgres(pg, "verify_big_target", id="verify-big-target",
                                 restore_target=True)


@pytest.fixture
def artifact(stack: Stack, big_backups: dict[str, dict[str, Any]],
             tmp_path: Path) -> Iterator[Any]:
    """Return a function giving a backup's stored file; put every file back afterwards."""
    saved: dict[Path, Path] = {}

    def path_of(compression: str) -> Path:
        path = stack.storage_dir / big_backups[compression]["storage_key"]
        if path not in saved:
            saved[path] = tmp_path / path.name
            shutil.copyfile(path, saved[path])
        return path

    yield path_of
    for path, copy in saved.items():
        shutil.copyfile(copy, path)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_an_intact_big_backup_verifies(api: Client, big_backups: dict[str, dict[str, Any]],
                                       compression: str) -> None:
    backup = big_backups[compression]
    result = _restore_job(api, f"/backups/{backup['id']}/verify")
    assert result["status"] == "completed", result["error"]
    assert result["details"]["size_bytes"] == backup["size_bytes"]
    assert result["details"]["checksum_md5"] == backup["checksum_md5"]
    assert result["details"]["checksum_sha256"] == backup["checksum_sha256"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_a_damaged_big_backup_is_corrupt_for_verify_and_restore(
        api: Client, pg: PostgresCluster, big_backups: dict[str, dict[str, Any]],
        artifact: Any, target: str, compression: str, damage: str) -> None:
    backup = big_backups[compression]
    path = artifact(compression)
    _damage(path, damage)
    damaged_md5 = hashlib.md5(path.read_bytes()).hexdigest()

    verified = _restore_job(api, f"/backups/{backup['id']}/verify")
    assert verified["status"] == "failed"
    error = verified["error"]
    assert error.startswith(f"corrupt: checksum mismatch: the stored artifact has MD5 "
                            f"{damaged_md5}"), error
    assert f"the backup recorded {backup['checksum_md5']}" in error
    if compression != "none" and damage == "cut":
        assert f"the {compression} stream is truncated" in error
    if compression == "gzip" and damage == "flip":
        assert "the gzip stream is corrupt" in error

    restored = _restore_job(api, f"/backups/{backup['id']}/restore",
                            {"target_database_id": target, "confirm": target})
    assert restored["status"] == "failed"
    assert restored["error"] == error
    # The refused restore rolled back: the target holds what it held, nothing more.
    assert pg.psql("SELECT x FROM keepme", "verify_big_target") == "42"
    assert pg.psql("SELECT to_regclass('public.noise') IS NULL", "verify_big_target") == "t"


def test_pg_restore_reads_the_data_blocks(api: Client, stack: Stack, pg: PostgresCluster,
                                          big_backups: dict[str, dict[str, Any]],
                                          artifact: Any) -> None:
    """A cut in the data section fails the checker itself, even with matching checksums.

    The recorded checksums are rewritten to those of the cut file, as if the archive
    had been damaged before it was hashed: only a reader of every data block notices.
    """
    backup = big_backups["none"]
    path = artifact("none")
    _damage(path, "cut")
    data = path.read_bytes()
    meta = stack.env["DATABASE_URL"].rsplit("/", 1)[1]
    record = ("UPDATE backups SET checksum_md5 = '{}', checksum_sha256 = '{}' "
              f"WHERE id = '{backup['id']}'")
    pg.psql(record.format(hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()),
            meta)
    try:
        verified = _restore_job(api, f"/backups/{backup['id']}/verify")
    finally:
        pg.psql(record.format(backup["checksum_md5"], backup["checksum_sha256"]), meta)
    assert verified["status"] == "failed"
    assert verified["error"].startswith("corrupt: pg_restore could not read the archive: "), \
        verified["error"]
    assert "end of file" in verified["error"]
