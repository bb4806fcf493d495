"""Retention through the API and after each backup: by age, by count, and the floor."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, Stack
from tests.services import PostgresCluster
from tests.worker.beat.helpers import meta_sql, wait_until


@pytest.fixture(scope="module")
def small_db(pg: PostgresCluster) -> str:
    pg.create_database("retention_src")
    pg.psql("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g", "retention_src")
    return "retention_src"


def _backup(api: Client, db_id: str) -> dict[str, Any]:
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    return backup


def _backdate(pg: PostgresCluster, stack: Stack, backup: dict[str, Any], days: int) -> None:
    """Make a backup look ``days`` old: its row's times and its files' mtimes."""
    meta_sql(pg, stack, f"UPDATE backups SET created_at = created_at - interval '{days} days', "
                        f"started_at = started_at - interval '{days} days', "
                        f"finished_at = finished_at - interval '{days} days' "
                        f"WHERE id = '{backup['id']}'")
    if backup["storage_key"]:
        when = time.time() - days * 86400
        for path in _files(stack, backup):
            os.utime(path, (when, when))


def _files(stack: Stack, backup: dict[str, Any]) -> list[Path]:
    artifact = stack.storage_dir / backup["storage_key"]
    return [artifact, artifact.with_name(artifact.name + ".json")]


def _deleted_counter(pg: PostgresCluster, stack: Stack, db_id: str) -> float:
    labels = json.dumps({"database_id": db_id}, separators=(",", ":"))
    value = meta_sql(pg, stack, "SELECT value FROM counters WHERE name = "
                                f"'backup_api_retention_deleted_total' AND labels = '{labels}'")
    return float(value or 0)


def test_age_dry_run_lists_then_run_deletes(api: Client, stack: Stack, pg: PostgresCluster,
                                            small_db: str) -> None:
    db_id = api.register_postgres(pg, small_db, retention_days=7, max_backups=0)
    old1, old2, fresh = (_backup(api, db_id) for _ in range(3))
    assert {b["status"] for b in (old1, old2, fresh)} == {"completed"}
    _backdate(pg, stack, old1, 10)
    _backdate(pg, stack, old2, 8)

    dry = api.post("/retention/run", json={"dry_run": True, "database_id": db_id})
    assert dry.status_code == 200, dry.text
    body = dry.json()
    assert body["dry_run"] is True and body["count"] == 2
    assert {b["backup_id"] for b in body["backups"]} == {old1["id"], old2["id"]}
    assert all("older than retention_days=7" in b["reason"] for b in body["backups"])
    assert all(p.exists() for b in (old1, old2) for p in _files(stack, b))  # nothing deleted

    applied = api.post("/retention/run", json={"dry_run": False, "database_id": db_id}).json()
    assert applied["dry_run"] is False and applied["count"] == 2 and applied["errors"] == []
    for gone in (old1, old2):
        assert api.get(f"/backups/{gone['id']}").status_code == 404
        assert not any(p.exists() for p in _files(stack, gone))
    assert api.get(f"/backups/{fresh['id']}/download").status_code == 200
    assert _deleted_counter(pg, stack, db_id) == 2
    # Applying again finds nothing more and counts nothing more.
    again = api.post("/retention/run", json={"dry_run": False, "database_id": db_id})
    assert again.json()["count"] == 0
    assert _deleted_counter(pg, stack, db_id) == 2


def test_count_is_enforced_after_each_completed_backup(api: Client, stack: Stack,
                                                       pg: PostgresCluster, small_db: str) -> None:
    db_id = api.register_postgres(pg, small_db, max_backups=2)
    first, second, third = (_backup(api, db_id) for _ in range(3))
    # No explicit retention run: the worker applied it after the third backup.
    wait_until(lambda: api.get(f"/backups/{first['id']}").status_code == 404, 20,
               "the oldest backup to be removed")
    assert not any(p.exists() for p in _files(stack, first))
    kept = {b["id"] for b in api.get("/backups", params={"database_id": db_id}).json()}
    assert kept == {second["id"], third["id"]}
    assert _deleted_counter(pg, stack, db_id) == 1


def test_floor_keeps_the_last_good_backup_through_failures(
    api: Client, stack: Stack, pg: PostgresCluster, small_db: str,
) -> None:
    db_id = api.register_postgres(pg, small_db, retention_days=7, max_backups=3)
    older_good, last_good = _backup(api, db_id), _backup(api, db_id)
    # Then the password changes and every backup fails.
    api.patch(f"/databases/{db_id}", json={"password": "not-the-Password-1"})
    failures = [_backup(api, db_id) for _ in range(4)]
    assert {f["status"] for f in failures} == {"failed"}
    for backup in (older_good, last_good, *failures[:3]):
        _backdate(pg, stack, backup, 30)

    body = api.post("/retention/run", json={"dry_run": False, "database_id": db_id}).json()
    deleted = {b["backup_id"]: b for b in body["backups"]}
    assert set(deleted) == {older_good["id"], *(f["id"] for f in failures[:3])}
    assert deleted[failures[0]["id"]]["reason"].startswith("failed backup older than")
    # The last good backup is 30 days old, yet stays and still downloads.
    assert api.get(f"/backups/{last_good['id']}/download").status_code == 200
    assert api.get(f"/backups/{failures[3]['id']}").status_code == 200  # recent failure stays
    assert _deleted_counter(pg, stack, db_id) == 1  # artifacts removed: the completed one


@pytest.mark.parametrize("body, field", [
    ({"dry_run": "maybe"}, "dry_run"),
    ({"database_id": ""}, "database_id"),
    ({"dry_run": True, "surprise": 1}, "surprise"),
])
def test_bad_retention_requests_name_the_field(api: Client, body: dict[str, Any],
                                               field: str) -> None:
    response = api.post("/retention/run", json=body)
    assert response.status_code == 422
    assert field in response.json()["message"]


def test_retention_of_an_unknown_database_is_404(api: Client) -> None:
    response = api.post("/retention/run", json={"database_id": "nope"})
    assert response.status_code == 404
    assert "nope" in response.json()["message"]


def test_a_non_json_body_is_refused_not_applied(api: Client) -> None:
    # What `curl -d '{"dry_run": true}'` sends without -H 'Content-Type: application/json'.
    response = api.session.post(api.base + "/retention/run", data='{"dry_run": true}',
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    assert "application/json" in response.json()["message"]
