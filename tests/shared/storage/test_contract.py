"""The storage contract: every backend passes the same suite (local files and a real MinIO)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.errors import ArtifactNotFound
from shared.storage import LocalStorage, Storage, sidecar_key
from shared.storage.s3 import S3Storage
from shared.storage.s3_upload import MIN_PART_SIZE
from tests.minio import MinioServer

MiB = 1024 * 1024
# Three 5 MiB parts and a tail: on S3 this is a real multipart upload.
LARGE = 3 * MIN_PART_SIZE + 12345


@dataclass
class Backend:
    storage: Storage
    leftovers: Callable[[], list[str]]
    """Everything stored, including temporary files and pending multipart uploads."""


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        root = tmp_path / "store"

        def files() -> list[str]:
            return sorted(str(Path(d, f).relative_to(root))
                          for d, _, names in os.walk(root) for f in names)

        return Backend(LocalStorage(str(root)), files)
    minio: MinioServer = request.getfixturevalue("minio")
    bucket = minio.make_bucket()
    storage = S3Storage(minio.settings(bucket), part_size=MIN_PART_SIZE)
    return Backend(storage, lambda: minio.keys(bucket) + [
        f"pending upload {key}" for key in minio.pending_uploads(bucket)])


def payload(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(f"{seed}".encode()).digest() * (MiB // 32)
    return (block * (size // len(block) + 1))[:size]


def write_in_chunks(storage: Storage, key: str, data: bytes, chunk: int = MiB) -> None:
    with storage.writer(key) as out:
        for start in range(0, len(data), chunk):
            out.write(data[start:start + chunk])
        out.set_metadata({"checksum-sha256": hashlib.sha256(data).hexdigest()})


def read_in_chunks(storage: Storage, key: str, chunk: int = 256 * 1024) -> bytes:
    parts = []
    with storage.open(key) as handle:
        while data := handle.read(chunk):
            assert len(data) <= chunk
            parts.append(data)
    return b"".join(parts)


@pytest.mark.parametrize("size", [0, 1, 1000, LARGE])
def test_put_then_get_returns_the_same_bytes(backend: Backend, size: int) -> None:
    data = payload(size, seed=size)
    write_in_chunks(backend.storage, "db1/2026/11/26/a.dump.gz", data)
    assert backend.storage.exists("db1/2026/11/26/a.dump.gz")
    assert backend.storage.size("db1/2026/11/26/a.dump.gz") == size
    assert read_in_chunks(backend.storage, "db1/2026/11/26/a.dump.gz") == data
    assert backend.leftovers() == ["db1/2026/11/26/a.dump.gz"]


def test_missing_key(backend: Backend) -> None:
    with pytest.raises(ArtifactNotFound, match="nope/missing.dump"):
        backend.storage.open("nope/missing.dump")
    with pytest.raises(ArtifactNotFound):
        backend.storage.size("nope/missing.dump")
    assert not backend.storage.exists("nope/missing.dump")
    backend.storage.delete("nope/missing.dump")  # not an error
    backend.storage.delete_artifact("nope/missing.dump")


def test_writing_an_existing_key_replaces_it(backend: Backend) -> None:
    backend.storage.put_bytes("k.dump", b"first version, longer than the second")
    write_in_chunks(backend.storage, "k.dump", payload(LARGE, seed=2))
    assert backend.storage.read_bytes("k.dump") == payload(LARGE, seed=2)
    backend.storage.put_bytes("k.dump", b"second")
    assert backend.storage.read_bytes("k.dump") == b"second"
    assert backend.leftovers() == ["k.dump"]


def test_list_is_sorted_and_filtered_by_prefix(backend: Backend) -> None:
    for key in ["b/2026/x.dump", "a/10.dump", "a/1.dump", "ab/1.dump", "c.dump"]:
        backend.storage.put_bytes(key, key.encode())
    assert list(backend.storage.list()) == [
        "a/1.dump", "a/10.dump", "ab/1.dump", "b/2026/x.dump", "c.dump"]
    assert list(backend.storage.list("a/")) == ["a/1.dump", "a/10.dump"]
    assert list(backend.storage.list("zzz/")) == []


def test_object_is_invisible_until_the_writer_finishes(backend: Backend) -> None:
    with backend.storage.writer("db/partial.dump") as out:
        out.write(payload(LARGE))  # more than one part is already sent on S3
        assert not backend.storage.exists("db/partial.dump")
        assert list(backend.storage.list()) == []
    assert backend.storage.size("db/partial.dump") == LARGE


@pytest.mark.parametrize("size", [1000, LARGE])
def test_failed_write_leaves_nothing(backend: Backend, size: int) -> None:
    with pytest.raises(RuntimeError, match="dump died"):
        with backend.storage.writer("db/failed.dump") as out:
            out.write(payload(size))
            raise RuntimeError("dump died")
    assert not backend.storage.exists("db/failed.dump")
    assert backend.leftovers() == []  # no temporary file, no pending multipart upload


def test_delete_clears_what_a_killed_writer_left(backend: Backend) -> None:
    # A writer whose process died never reaches its exit: no abort, no cleanup.
    unfinished = backend.storage.writer("db/killed.dump")
    out = unfinished.__enter__()
    out.write(payload(LARGE))  # on S3, parts are already uploaded
    assert backend.leftovers() != []
    backend.storage.delete("db/killed.dump")  # what the reaper does for the key
    assert backend.leftovers() == []
    with suppress(Exception):  # let the abandoned writer go quietly
        unfinished.__exit__(RuntimeError, RuntimeError("killed"), None)


def test_failed_overwrite_keeps_the_previous_object(backend: Backend) -> None:
    backend.storage.put_bytes("db/keep.dump", b"good backup")
    with pytest.raises(RuntimeError):
        with backend.storage.writer("db/keep.dump") as out:
            out.write(payload(LARGE))
            raise RuntimeError("second attempt failed")
    assert backend.storage.read_bytes("db/keep.dump") == b"good backup"
    assert backend.leftovers() == ["db/keep.dump"]


def test_sidecar_sits_beside_the_artifact_and_goes_with_it(backend: Backend) -> None:
    key = "db/2026/11/26/db-1.dump.gz"
    backend.storage.put_bytes(key, b"artifact")
    backend.storage.write_sidecar(key, {"backup_id": "b1", "checksum_md5": "abc"})
    assert sidecar_key(key) == key + ".json"
    assert json.loads(backend.storage.read_bytes(sidecar_key(key))) == {
        "backup_id": "b1", "checksum_md5": "abc"}
    assert list(backend.storage.list("db/")) == [key, key + ".json"]
    backend.storage.delete_artifact(key)
    assert backend.leftovers() == []


def test_delete_removes_only_that_key(backend: Backend) -> None:
    backend.storage.put_bytes("db/one.dump", b"1")
    backend.storage.put_bytes("db/two.dump", b"2")
    backend.storage.delete("db/one.dump")
    assert not backend.storage.exists("db/one.dump")
    assert backend.storage.read_bytes("db/two.dump") == b"2"


def test_check_passes_on_a_usable_backend(backend: Backend) -> None:
    backend.storage.check()
