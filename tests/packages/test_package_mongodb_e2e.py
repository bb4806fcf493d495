"""A package of a PostgreSQL backup and a MongoDB backup (mongodump against FerretDB),
unpacked with the standard library; the MongoDB member restores with mongorestore."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import ferretdb
from tests.packages.conftest import (
    STORAGE_BACKENDS,
    PackageStack,
    start_package_stack,
    stop_package_stack,
)
from tests.peers import path_with_peers
from tests.services import PG_PASSWORD, PG_USER, PostgresCluster, Redis

# The worker backs up with mongodump; the test restores the member with mongorestore.
pytestmark = pytest.mark.requires_peer("mongodump", "mongorestore")


@pytest.fixture(scope="module")
def ferret(workdir: Path, pg: PostgresCluster) -> Iterator[Any]:
    server = ferretdb.FerretDB(pg, workdir / "ferretdb-packages.log",
                               database="ferretdb_packages").start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=STORAGE_BACKENDS)
def packages(request: pytest.FixtureRequest, workdir: Path, pg: PostgresCluster,
             redis: Redis) -> Iterator[PackageStack]:
    # The worker finds the Go-built mongodump on its PATH, as scripts/test.sh sets up.
    running = start_package_stack(request, workdir, pg, redis,
                                  PATH=path_with_peers())
    yield running
    stop_package_stack(running)


def _members(fmt: str, data: bytes) -> dict[str, bytes]:
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
                for m in archive.getmembers()}


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_package_of_postgres_and_mongodb_backups(
    packages: PackageStack, pg: PostgresCluster, ferret: Any, fmt: str, tmp_path: Path,
) -> None:
    # Unique per run: the suite runs once per storage backend against the same servers.
    source = f"pkgsrc_{fmt.replace('.', '_')}_{uuid.uuid4().hex[:6]}"
    ferret.client()[source].items.insert_many(
        [{"_id": i, "name": f"item {i}", "tags": ["a", "b"][: i % 3]} for i in range(300)])
    mongo_id = f"mongo-{uuid.uuid4().hex[:6]}"
    created = packages.client.post("/databases", json={
        "id": mongo_id, "engine": "mongodb", "host": "127.0.0.1", "port": ferret.port,
        "username": PG_USER, "password": PG_PASSWORD, "database_name": source,
        "options": dict(ferretdb.PLAIN)})
    assert created.status_code == 201, created.text
    pg_id = packages.client.register_postgres(pg, "postgres", id=f"pg-{uuid.uuid4().hex[:6]}")
    backups = {pg_id: packages.backup(pg_id), mongo_id: packages.backup(mongo_id)}

    package = packages.create_package(database_ids=[pg_id, mongo_id], format=fmt)
    assert package["status"] == "completed", package["error"]
    download = packages.client.get(f"/packages/{package['id']}/download").content
    assert hashlib.md5(download).hexdigest() == package["checksum_md5"]
    members = _members(fmt, download)
    manifest = json.loads(members["manifest.json"])
    assert {e["database_id"]: e["engine"] for e in manifest["entries"]} == {
        pg_id: "postgres", mongo_id: "mongodb"}
    for entry in manifest["entries"]:
        backup = backups[entry["database_id"]]
        assert entry["backup_id"] == backup["id"]
        assert hashlib.md5(members[entry["file"]]).hexdigest() == backup["checksum_md5"]

    mongo_file = next(e["file"] for e in manifest["entries"] if e["engine"] == "mongodb")
    archive = tmp_path / "mongo.archive"
    archive.write_bytes(gzip.decompress(members[mongo_file]))
    config = tmp_path / "restore.yaml"
    config.write_text(f"password: {json.dumps(PG_PASSWORD)}\n")
    config.chmod(0o600)
    target = f"{source}_restored"
    restored = subprocess.run(
        [ferretdb.peer("mongorestore"), f"--config={config}", *ferret.tool_args(),
         f"--archive={archive}", f"--nsFrom={source}.*", f"--nsTo={target}.*",
         "--numParallelCollections=1", "--noIndexRestore"],
        capture_output=True, text=True, timeout=300)
    assert restored.returncode == 0, restored.stderr
    documents = list(ferret.client()[target].items.find().sort("_id", 1))
    assert documents == list(ferret.client()[source].items.find().sort("_id", 1))
    assert len(documents) == 300
