"""MongoDB verify and restore through the API: the real mongorestore into FerretDB."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client
from tests.ferretdb import FerretDB
from tests.services import PostgresCluster
from tests.worker.mongodb.helpers import register, take_backup

# FerretDB 1.x rejects the "ns" field mongorestore puts in index specs; real FerretDB
# users set the same option.
NO_INDEXES = {"restore_indexes": False}


def _documents(ferret: FerretDB, database: str) -> dict[str, list[Any]]:
    db = ferret.client()[database]
    return {name: list(db[name].find().sort("_id", 1))
            for name in sorted(db.list_collection_names()) if not name.startswith("system.")}


def _run(api: Client, backup_id: str, action: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/backups/{backup_id}/{action}", json=body or None)
    assert response.status_code == 202, response.text
    return api.wait_done(f"/restores/{response.json()['id']}")


@pytest.mark.requires_peer("mongodump", "mongorestore")
def test_verify_and_restore_a_mongodb_backup(api: Client, ferret: FerretDB,
                                             source: str) -> None:
    src = register(api, ferret, source)
    backup = take_backup(api, src)
    assert backup["status"] == "completed", backup["error"]

    verified = _run(api, backup["id"], "verify")
    assert verified["status"] == "completed", verified["error"]
    assert verified["details"]["checksum_sha256"] == backup["checksum_sha256"]

    target = register(api, ferret, "shop_restored", restore_target=True,
                      options={"authMechanism": "PLAIN", **NO_INDEXES})
    restored = _run(api, backup["id"], "restore", target_database_id=target)
    assert restored["status"] == "completed", restored["error"]
    assert _documents(ferret, "shop_restored") == _documents(ferret, source)

    # Now the target holds data: a second restore needs confirm.
    refused = _run(api, backup["id"], "restore", target_database_id=target)
    assert refused["status"] == "failed"
    assert "not empty" in refused["error"]
    ferret.client()["shop_restored"]["customers"].delete_many({})
    again = _run(api, backup["id"], "restore", target_database_id=target, confirm=target)
    assert again["status"] == "completed", again["error"]
    assert _documents(ferret, "shop_restored") == _documents(ferret, source)


# Only a completed backup gets as far as the engine check (else 409): mongodump must run.
@pytest.mark.requires_peer("mongodump")
def test_restore_into_another_engine_is_422(api: Client, ferret: FerretDB, source: str,
                                            pg: PostgresCluster) -> None:
    backup = take_backup(api, register(api, ferret, source))
    postgres_db = api.register_postgres(pg, "postgres", restore_target=True)
    response = api.post(f"/backups/{backup['id']}/restore",
                        json={"target_database_id": postgres_db})
    assert response.status_code == 422
    assert "target_database_id" in response.json()["message"]
