"""MongoDB backups through the API with the real mongodump, against FerretDB, restored
with the real mongorestore and compared document by document.

FerretDB (v1.24.2, PostgreSQL backend) stands in for MongoDB: it is the MongoDB-wire
server that builds from the Go module proxy here. Where it differs from MongoDB the
test says so (index restore, below).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import bson
import pytest
import zstandard
from bson import json_util

from tests.conftest import Client, Stack
from tests.ferretdb import FerretDB, peer
from tests.services import PG_PASSWORD, PG_USER
from tests.worker.mongodb.helpers import (
    register,
    take_backup,
)


def _decompress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _archive_indexes(archive: bytes) -> dict[str, list[dict[str, Any]]]:
    """Read each collection's index specs from a mongodump archive's prelude."""
    offset = 4 + struct.unpack_from("<i", archive, 4)[0]  # magic, then the header document
    indexes: dict[str, list[dict[str, Any]]] = {}
    while archive[offset:offset + 4] != b"\xff\xff\xff\xff":
        size = struct.unpack_from("<i", archive, offset)[0]
        entry = bson.decode(archive[offset:offset + size])
        indexes[entry["collection"]] = json_util.loads(entry["metadata"])["indexes"]
        offset += size
    return indexes


def _mongorestore(ferret: FerretDB, archive: Path, source: str, target: str,
                  tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "restore.yaml"
    config.write_text(f"password: {json.dumps(PG_PASSWORD)}\n")
    config.chmod(0o600)
    # --noIndexRestore: FerretDB rejects the "ns" field mongorestore always puts in
    # index specs ("Index option \"ns\" is unknown"); indexes are checked in the archive.
    # --numParallelCollections=1: FerretDB's PostgreSQL backend prefers one writer.
    return subprocess.run(
        [peer("mongorestore"), f"--config={config}", *ferret.tool_args(),
         f"--archive={archive}", f"--nsFrom={source}.*", f"--nsTo={target}.*",
         "--numParallelCollections=1", "--noIndexRestore"],
        capture_output=True, text=True, timeout=300)


@pytest.mark.requires_peer("mongodump", "mongorestore")
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_backup_restores_every_document(
    api: Client, mongo_stack: Stack, ferret: FerretDB, source: str, compression: str,
    tmp_path: Path,
) -> None:
    db_id = register(api, ferret, source, compression=compression)
    backup = take_backup(api, db_id)
    assert backup["status"] == "completed", backup["error"]
    assert backup["engine"] == "mongodb" and backup["compression"] == compression
    assert backup["storage_key"].endswith(".archive" + {"gzip": ".gz", "zstd": ".zst",
                                                         "none": ""}[compression])

    download = api.get(f"/backups/{backup['id']}/download")
    assert download.status_code == 200
    assert int(download.headers["Content-Length"]) == backup["size_bytes"] == len(download.content)
    assert hashlib.md5(download.content).hexdigest() == backup["checksum_md5"]
    assert hashlib.sha256(download.content).hexdigest() == backup["checksum_sha256"]
    sidecar = json.loads((mongo_stack.storage_dir / (backup["storage_key"] + ".json"))
                         .read_text())
    assert sidecar["engine"] == "mongodb" and sidecar["tools"]["mongodump"] not in ("", "unknown")

    archive = tmp_path / "shop.archive"
    archive.write_bytes(_decompress(download.content, compression))
    source_db = ferret.client()[source]
    indexes = _archive_indexes(archive.read_bytes())
    assert set(indexes) == {"customers", "orders", "attachments"}
    for name in indexes:
        stored = {spec["name"]: spec for spec in indexes[name]}
        live = source_db[name].index_information()
        assert set(stored) == set(live), name
        for index_name, spec in stored.items():
            assert [tuple(k) for k in spec["key"].items()] == live[index_name]["key"]
    assert any(spec.get("unique") for spec in indexes["customers"])

    target = f"restored_{compression}"
    restored = _mongorestore(ferret, archive, source, target, tmp_path)
    assert restored.returncode == 0, restored.stderr
    target_db = ferret.client()[target]
    assert sorted(target_db.list_collection_names()) == ["attachments", "customers", "orders"]
    for name in ("customers", "orders", "attachments"):
        expected = list(source_db[name].find().sort("_id", 1))
        assert list(target_db[name].find().sort("_id", 1)) == expected, name
    assert target_db.customers.count_documents({}) == 500
    assert target_db.orders.count_documents({}) == 2000


@pytest.mark.requires_peer("mongodump")
def test_uri_option_backs_up(api: Client, ferret: FerretDB, source: str) -> None:
    uri = f"mongodb://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{ferret.port}/?authMechanism=PLAIN"
    db_id = register(api, ferret, source, username=None, password=None,
                      options={"uri": uri})
    backup = take_backup(api, db_id)
    assert backup["status"] == "completed", backup["error"]
