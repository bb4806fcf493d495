"""Attack: overwrite a database with someone else's data through a restore.

The attacker registers a database of their own (here a database of the test cluster
standing for their server), backs it up, and restores that backup over a production
database. Each attempt must be refused with a clear message, leaving the target as it
was; only a target the config (or, for an API database, the API) marked
``restore_target`` takes another database's backup, and a non-empty one only with
``confirm`` naming it. Every restore and deletion leaves an audit line in the API log.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Client, Stack
from tests.services import PostgresCluster
from tests.worker.conftest import PROD_ROWS

ATTACKER_ROWS = ("CREATE TABLE orders (id int PRIMARY KEY, item text);"
                 "INSERT INTO orders VALUES (1, 'attacker row')")
ROWS = "SELECT count(*) || ' ' || min(item) FROM orders"
REAL = "50 real order 1"


@pytest.fixture(scope="module")
def attacker_backup(guarded: Client, pg: PostgresCluster) -> dict[str, Any]:
    """A completed backup of the attacker's own database."""
    pg.create_database("attacker_src")
    pg.psql(ATTACKER_ROWS, "attacker_src")
    db_id = guarded.register_postgres(pg, "attacker_src", id="attacker")
    backup = guarded.wait_backup(guarded.post("/backups", json={"database_id": db_id})
                                 .json()["id"])
    assert backup["status"] == "completed", backup["error"]
    return backup


def restore(api: Client, backup_id: str, **body: Any) -> Any:
    return api.post(f"/backups/{backup_id}/restore", json=body)


def test_another_databases_backup_cannot_overwrite_a_config_managed_database(
        guarded: Client, pg: PostgresCluster, attacker_backup: dict[str, Any]) -> None:
    for body in ({"target_database_id": "prod", "confirm": "prod"},
                 {"target_database_id": "prod"}):
        refused = restore(guarded, attacker_backup["id"], **body)
        assert refused.status_code == 409, refused.text
        message = refused.json()["message"]
        assert "'prod' is not a restore target" in message
        assert "restore_target: true (in config.yaml)" in message
    # Nothing was queued, and the production rows are the production rows.
    assert guarded.get("/restores", params={"backup_id": attacker_backup["id"]}).json() == []
    assert pg.psql(ROWS, "guard_prod") == REAL

    # The API cannot mark a config-managed database: PATCH answers 409, the id is taken.
    assert guarded.patch("/databases/prod", {"restore_target": True}).status_code == 409
    taken = guarded.post("/databases", json={
        "id": "prod", "engine": "postgres", "host": "127.0.0.1", "database_name": "x",
        "restore_target": True})
    assert taken.status_code == 409
    assert guarded.get("/databases/prod").json()["restore_target"] is False


def test_config_can_open_a_config_managed_target(
        guarded: Client, pg: PostgresCluster, attacker_backup: dict[str, Any]) -> None:
    assert guarded.get("/databases/staging").json()["restore_target"] is True
    # Non-empty: confirm must name the target, `true` is refused.
    for confirm, field in ((True, "send the target database id"), ("prod", "'staging'")):
        refused = restore(guarded, attacker_backup["id"], target_database_id="staging",
                          confirm=confirm)
        assert refused.status_code == 422 and field in refused.json()["message"]
    unconfirmed = guarded.wait_done("/restores/" + restore(
        guarded, attacker_backup["id"], target_database_id="staging").json()["id"])
    assert unconfirmed["status"] == "failed"
    assert unconfirmed["error"] == ('target database \'staging\' is not empty; repeat with '
                                    '"confirm": "staging" to replace its contents')
    assert pg.psql(ROWS, "guard_staging") == REAL
    done = guarded.wait_done("/restores/" + restore(
        guarded, attacker_backup["id"], target_database_id="staging",
        confirm="staging").json()["id"])
    assert done["status"] == "completed", done["error"]
    assert done["confirm"] is True
    assert pg.psql(ROWS, "guard_staging") == "1 attacker row"


def test_an_api_database_takes_another_backup_only_once_marked(
        guarded: Client, pg: PostgresCluster, attacker_backup: dict[str, Any]) -> None:
    pg.create_database("guard_victim")
    pg.psql(PROD_ROWS, "guard_victim")
    victim = guarded.register_postgres(pg, "guard_victim", id="victim")
    refused = restore(guarded, attacker_backup["id"], target_database_id=victim,
                      confirm=victim)
    assert refused.status_code == 409
    assert "with PATCH /databases/victim" in refused.json()["message"]
    assert pg.psql(ROWS, "guard_victim") == REAL

    marked = guarded.patch(f"/databases/{victim}", {"restore_target": True})
    assert marked.status_code == 200 and marked.json()["restore_target"] is True
    done = guarded.wait_done("/restores/" + restore(
        guarded, attacker_backup["id"], target_database_id=victim,
        confirm=victim).json()["id"])
    assert done["status"] == "completed", done["error"]
    assert pg.psql(ROWS, "guard_victim") == "1 attacker row"


def test_a_backup_restores_into_its_own_database_unmarked(guarded: Client,
                                                          pg: PostgresCluster) -> None:
    backup = guarded.wait_backup(guarded.post("/backups", json={"database_id": "prod"})
                                 .json()["id"])
    assert backup["status"] == "completed", backup["error"]
    done = guarded.wait_done("/restores/" + restore(guarded, backup["id"],
                                                    confirm="prod").json()["id"])
    assert done["status"] == "completed", done["error"]
    assert done["target_database_id"] == "prod"
    assert pg.psql(ROWS, "guard_prod") == REAL


def test_restores_and_deletes_are_audited_with_the_key_name(
        guarded: Client, guarded_stack: Stack, pg: PostgresCluster,
        attacker_backup: dict[str, Any]) -> None:
    restore(guarded, attacker_backup["id"], target_database_id="prod", confirm="prod")
    doomed = guarded.register_postgres(pg, "attacker_src", id="doomed")
    backup = guarded.wait_backup(guarded.post("/backups", json={"database_id": doomed})
                                 .json()["id"])
    package = guarded.wait_done("/packages/" + guarded.post(
        "/packages/create", json={"database_ids": [doomed]}).json()["id"])
    assert guarded.delete(f"/packages/{package['id']}").status_code == 204
    assert guarded.delete(f"/backups/{backup['id']}").status_code == 204
    assert guarded.delete(f"/databases/{doomed}").status_code == 204
    assert guarded.post("/retention/run", json={"dry_run": False}).status_code == 200

    events = [e for e in _json_lines(guarded_stack.api.log()) if e.get("audit") is True]
    by_action = {(e["action"], e.get("outcome")): e for e in events}
    refused = by_action[("restore", "refused")]
    assert refused["backup_id"] == attacker_backup["id"]
    assert refused["target_database_id"] == "prod"
    accepted = [e for e in events if e["action"] == "restore"
                and e.get("outcome") == "accepted" and e["database_id"] == "attacker"]
    assert all(e["restore_id"] for e in accepted)
    assert {e["confirm"] for e in accepted} == {True, False}  # with and without confirm
    assert by_action[("package.delete", None)]["package_id"] == package["id"]
    assert by_action[("backup.delete", None)]["backup_id"] == backup["id"]
    assert by_action[("database.delete", None)]["database_id"] == doomed
    assert ("retention.run", None) in by_action
    assert {e["key_name"] for e in events} == {"tests"}


def _json_lines(log: str) -> list[dict[str, Any]]:
    entries = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries
