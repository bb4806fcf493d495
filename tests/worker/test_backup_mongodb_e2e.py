"""MongoDB backups through the API with the real mongodump, against FerretDB, restored
with the real mongorestore and compared document by document.

FerretDB (v1.24.2, PostgreSQL backend) stands in for MongoDB: it is the MongoDB-wire
server that builds from the Go module proxy here. Where it differs from MongoDB the
test says so (index restore, below).
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
import zstandard
from bson import json_util

from tests.conftest import Client, Stack, start_stack
from tests.ferretdb import PLAIN, FerretDB, path_with_peers, path_without, peer
from tests.services import PG_PASSWORD, PG_USER, REPO, PostgresCluster, Redis


@pytest.fixture(scope="module")
def ferret(workdir: Path, pg: PostgresCluster) -> Iterator[FerretDB]:
    server = FerretDB(pg, workdir / "ferretdb.log").start()
    yield server
    server.stop()


def _stop(stack: Stack) -> None:
    for process in [stack.api, *stack.workers]:
        process.stop()


@pytest.fixture(scope="module")
def mongo_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    """API + a worker whose PATH has the Go-built mongodump (as scripts/test.sh sets up)."""
    running = start_stack(workdir / "mongo-stack", pg, redis, workers=0)
    running.start_worker("mongo1", PATH=path_with_peers())
    yield running
    _stop(running)


@pytest.fixture(scope="module")
def api(mongo_stack: Stack) -> Client:
    return mongo_stack.client


def _seed(ferret: FerretDB, name: str) -> None:
    db = ferret.client()[name]
    when = dt.datetime(2024, 2, 29, 13, 45, 7, 123000, tzinfo=dt.UTC)
    db.customers.insert_many([{
        "_id": i, "email": f"user{i}@example.com", "name": f"Customer {i}",
        "joined": when + dt.timedelta(days=i, milliseconds=i),
        "profile": {"tier": ["gold", "silver", "bronze"][i % 3], "score": i * 1.5,
                    "address": {"city": "Zürich" if i % 2 else "Zoë 🚀", "zip": [80, i]},
                    "flags": {"active": i % 4 != 0, "note": None}},
        "avatar": bson.Binary(hashlib.sha256(str(i).encode()).digest()),
        "visits": bson.Int64(2**40 + i),
    } for i in range(1, 501)])
    db.customers.create_index([("email", 1)], name="by_email", unique=True)
    db.orders.insert_many([{
        "customer_id": (i % 500) + 1, "placed_at": when - dt.timedelta(hours=i),
        "items": [{"sku": f"SKU-{j}", "qty": j, "price": j * 2.25} for j in range(i % 5 + 1)],
        "total": i * 3.5, "status": "paid" if i % 3 else "open",
    } for i in range(2000)])
    db.orders.create_index([("customer_id", 1), ("placed_at", -1)], name="by_customer")
    # Large binaries make the dump span many pipe reads and compressor blocks.
    db.attachments.insert_many([{"_id": f"file-{i}", "data": bson.Binary(os.urandom(300_000)),
                                 "uploaded": when} for i in range(8)])


@pytest.fixture(scope="module")
def source(ferret: FerretDB) -> str:
    _seed(ferret, "shop")
    return "shop"


def _register(api: Client, ferret: FerretDB, database: str, **extra: Any) -> str:
    db_id = extra.pop("id", f"mongo-{uuid.uuid4().hex[:8]}")
    body = {"id": db_id, "engine": "mongodb", "host": "127.0.0.1", "port": ferret.port,
            "username": PG_USER, "password": PG_PASSWORD, "database_name": database,
            "options": dict(PLAIN), **extra}
    response = api.post("/databases", json=body)
    assert response.status_code == 201, response.text
    return db_id


def _backup(api: Client, db_id: str, timeout: float = 120) -> dict[str, Any]:
    created = api.post("/backups", json={"database_id": db_id})
    assert created.status_code == 202, created.text
    return api.wait_backup(created.json()["id"], timeout=timeout)


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


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_backup_restores_every_document(
    api: Client, mongo_stack: Stack, ferret: FerretDB, source: str, compression: str,
    tmp_path: Path,
) -> None:
    db_id = _register(api, ferret, source, compression=compression)
    backup = _backup(api, db_id)
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


def _assert_failed_cleanly(backup: dict[str, Any], stack: Stack, db_id: str, api: Client) -> None:
    assert backup["status"] == "failed"
    assert backup["storage_key"] is None and backup["checksum_md5"] is None
    assert backup["size_bytes"] is None
    assert not (stack.storage_dir / db_id).exists()
    assert api.get(f"/backups/{backup['id']}/download").status_code == 409


def test_wrong_password_fails_readably(api: Client, mongo_stack: Stack, ferret: FerretDB,
                                       source: str) -> None:
    secret = "Wrong-Mongo-pw-7731"
    db_id = _register(api, ferret, source, password=secret)
    backup = _backup(api, db_id)
    _assert_failed_cleanly(backup, mongo_stack, db_id, api)
    assert "mongodump exited with code 1" in backup["error"]
    assert "password authentication failed" in backup["error"]
    assert secret not in backup["error"]
    assert secret not in mongo_stack.logs()


def test_unknown_host_fails_readably(api: Client, mongo_stack: Stack, ferret: FerretDB) -> None:
    db_id = _register(api, ferret, "shop", host="no-such-host.invalid")
    backup = _backup(api, db_id)
    _assert_failed_cleanly(backup, mongo_stack, db_id, api)
    assert "mongodump exited with code 1" in backup["error"]
    assert "no-such-host.invalid" in backup["error"]
    assert "server selection error" in backup["error"]


def test_missing_database_fails_instead_of_an_empty_archive(
    api: Client, mongo_stack: Stack, ferret: FerretDB, source: str,
) -> None:
    # mongodump exits 0 for a database that does not exist, writing an archive with a
    # header and no collection: restoring it would silently restore nothing.
    db_id = _register(api, ferret, "no_such_database")
    backup = _backup(api, db_id)
    _assert_failed_cleanly(backup, mongo_stack, db_id, api)
    assert backup["error"] == (
        "mongodump found no collections in database 'no_such_database': it does not exist, "
        "is empty, or the user may not read it")


def test_mongodump_missing_from_path(workdir: Path, pg: PostgresCluster, redis: Redis,
                                     ferret: FerretDB, source: str) -> None:
    stack = start_stack(workdir / "no-mongodump", pg, redis, workers=0)
    try:
        stack.start_worker("bare", PATH=path_without("mongodump"))
        db_id = _register(stack.client, ferret, source)
        backup = _backup(stack.client, db_id)
        _assert_failed_cleanly(backup, stack, db_id, stack.client)
        assert backup["error"] == "mongodump not found: install it or put it on PATH"
        # The worker said so at start, before any backup.
        assert "mongodump missing: mongodump not found" in stack.workers[0].log()
    finally:
        _stop(stack)


def _check_config(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.write_text("databases:\n  - {id: logs, engine: mongodb, host: 127.0.0.1,"
                      " database_name: logs, options: {authMechanism: PLAIN}}\n")
    return subprocess.run(
        ["python3", "-m", "shared.cli", "check-config", str(config)], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PATH": path},
        capture_output=True, text=True, timeout=60)


def test_check_config_reports_a_missing_mongodump(tmp_path: Path) -> None:
    missing = _check_config(tmp_path, path_without("mongodump"))
    assert missing.returncode == 1
    assert "mongodump not found: install it or put it on PATH (needed by logs)" in missing.stderr
    present = _check_config(tmp_path, path_with_peers())
    assert present.returncode == 0, present.stderr
    assert json.loads(present.stdout)["tools"]["mongodump"].endswith("/mongodump")


def test_options_are_validated_and_a_uri_password_is_never_shown(
    api: Client, ferret: FerretDB,
) -> None:
    bad = api.post("/databases", json={
        "id": "bad-opts", "engine": "mongodb", "host": "h", "database_name": "d",
        "options": {"authSorce": "admin", "tls": "yes"}})
    assert bad.status_code == 422
    assert "options.authSorce: unknown option for engine mongodb" in bad.json()["message"]
    assert "options.tls: must be true or false" in bad.json()["message"]

    uri = f"mongodb://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{ferret.port}/?authMechanism=PLAIN"
    db_id = _register(api, ferret, "shop", options={"uri": uri})
    shown = api.get(f"/databases/{db_id}").json()["options"]["uri"]
    assert PG_PASSWORD not in shown and shown.startswith(f"mongodb://{PG_USER}:***@127.0.0.1")
    patched = api.patch(f"/databases/{db_id}", json={"options": {"sslmode": "require"}})
    assert patched.status_code == 422
    assert "options.sslmode: unknown option for engine mongodb" in patched.json()["message"]


def test_uri_option_backs_up(api: Client, ferret: FerretDB, source: str) -> None:
    uri = f"mongodb://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{ferret.port}/?authMechanism=PLAIN"
    db_id = _register(api, ferret, source, username=None, password=None,
                      options={"uri": uri})
    backup = _backup(api, db_id)
    assert backup["status"] == "completed", backup["error"]


def test_uri_password_is_redacted_from_the_error(api: Client, mongo_stack: Stack,
                                                 ferret: FerretDB) -> None:
    # mongodump repeats the whole connection string when it cannot connect.
    secret = "Uri-Secret-3391"
    closed = _closed_port()
    uri = f"mongodb://{PG_USER}:{secret}@127.0.0.1:{closed}/?authMechanism=PLAIN"
    db_id = _register(api, ferret, "shop", username=None, password=None, options={"uri": uri})
    backup = _backup(api, db_id)
    _assert_failed_cleanly(backup, mongo_stack, db_id, api)
    assert f"mongodb://{PG_USER}:***@127.0.0.1:{closed}/" in backup["error"]
    assert "connection refused" in backup["error"]
    assert secret not in backup["error"]
    assert secret not in mongo_stack.logs()
    assert secret not in json.dumps(api.get(f"/databases/{db_id}").json())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts and never answers: mongodump waits for server selection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_password_never_on_the_command_line(api: Client, ferret: FerretDB,
                                            silent_server: int) -> None:
    secret = "Hidden-Mongo-5521"
    db_id = _register(api, ferret, "shop", port=silent_server, password=secret)
    created = api.post("/backups", json={"database_id": db_id})
    assert created.status_code == 202
    seen = False
    for _ in range(100):
        for cmdline in _cmdlines():
            if "mongodump" in cmdline and "--archive" in cmdline:
                seen = True
                assert secret not in cmdline
                assert f"--port={silent_server}" in cmdline
        if seen:
            break
        threading.Event().wait(0.1)
    assert seen, "mongodump never showed up in the process list"
    backup = api.wait_backup(created.json()["id"], timeout=60)
    assert backup["status"] == "failed"
    assert secret not in backup["error"]


def _cmdlines() -> Iterator[str]:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            yield raw.replace(b"\0", b" ").decode(errors="replace")
