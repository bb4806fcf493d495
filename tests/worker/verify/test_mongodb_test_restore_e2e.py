"""A MongoDB test restore on FerretDB: mongorestore into a scratch database, documents
counted per collection against the counts taken around mongodump, scratch dropped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Client, Stack, start_stack
from tests.ferretdb import FerretDB
from tests.peers import path_with_peers
from tests.services import PostgresCluster, Redis
from tests.worker.mongodb.conftest import seed
from tests.worker.mongodb.helpers import register, stop, take_backup

# Test restores of every database's backups (none scheduled: the test asks for one).
MONGO_VERIFY_CONFIG = """
global:
  schedule: "0 2 * * *"
  compression: zstd
  verify:
    test_restore: true
storage:
  type: local
"""


@pytest.fixture(scope="module")
def ferret(workdir: Path, pg: PostgresCluster) -> Iterator[FerretDB]:
    server = FerretDB(pg, workdir / "verify-ferretdb.log", database="ferretdb_verify").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mongo_verify_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    running = start_stack(workdir / "mongo-verify-stack", pg, redis,
                          config=MONGO_VERIFY_CONFIG, workers=0)
    running.start_worker("mongoverify1", PATH=path_with_peers())
    yield running
    stop(running)


@pytest.mark.requires_peer("mongodump", "mongorestore")
def test_a_mongodb_test_restore_counts_every_collection(mongo_verify_stack: Stack,
                                                        ferret: FerretDB) -> None:
    api: Client = mongo_verify_stack.client
    seed(ferret, "verify_shop")
    # FerretDB 1.x rejects the index specs mongorestore sends (see test_restore_api_e2e).
    db_id = register(api, ferret, "verify_shop",
                     options={"authMechanism": "PLAIN", "restore_indexes": False})
    backup = take_backup(api, db_id)
    assert backup["status"] == "completed", backup["error"]

    asked = api.post(f"/backups/{backup['id']}/verify", json={"test_restore": True})
    assert asked.status_code == 202, asked.text
    done = api.wait_done(f"/restores/{asked.json()['id']}", 240)
    assert done["status"] == "completed", done["error"]

    row = api.get(f"/backups/{backup['id']}").json()
    assert row["verify_status"] == "ok"
    details = row["verify_details"]
    assert details["tables"] == {
        "attachments": {"source": 8, "restored": 8},
        "customers": {"source": 500, "restored": 500},
        "orders": {"source": 2000, "restored": 2000},
    }
    assert details["scratch"]["dropped"] is True
    names = ferret.client().list_database_names()
    assert details["scratch"]["database"] not in names
    assert not [name for name in names if name.startswith("backup_api_verify_")]
