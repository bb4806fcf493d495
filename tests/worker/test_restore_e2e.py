"""Verify and restore through the API: checksums re-read, real pg_restore into a database."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, Stack
from tests.services import PostgresCluster

SEED = """
CREATE TABLE books (id serial PRIMARY KEY, title text, year int, meta jsonb);
INSERT INTO books (title, year, meta)
SELECT 'book ' || g, 1900 + g % 120, jsonb_build_object('g', g) FROM generate_series(1, 3000) g;
"""
CONTENT = "SELECT md5(string_agg(b::text, ',' ORDER BY b.id)) FROM books b"


def wait_restore(api: Client, restore_id: str) -> dict[str, Any]:
    return api.wait_done(f"/restores/{restore_id}")


@pytest.fixture(scope="module")
def library(api: Client, pg: PostgresCluster) -> dict[str, Any]:
    """A completed backup of a seeded database."""
    pg.create_database("library")
    pg.psql(SEED, "library")
    db_id = api.register_postgres(pg, "library", id="library")
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "completed", backup["error"]
    return backup


def test_verify_recomputes_checksums(api: Client, library: dict[str, Any]) -> None:
    response = api.post(f"/backups/{library['id']}/verify")
    assert response.status_code == 202
    assert response.json()["kind"] == "verify"
    result = wait_restore(api, response.json()["id"])
    assert result["status"] == "completed", result["error"]
    assert result["details"]["checksum_md5"] == library["checksum_md5"]
    assert result["details"]["checksum_sha256"] == library["checksum_sha256"]
    listed = api.get("/restores", params={"backup_id": library["id"]}).json()
    assert result["id"] in [r["id"] for r in listed]


def test_restore_into_an_empty_database(api: Client, pg: PostgresCluster,
                                        library: dict[str, Any]) -> None:
    pg.create_database("library_copy")
    target = api.register_postgres(pg, "library_copy", restore_target=True)
    response = api.post(f"/backups/{library['id']}/restore",
                        json={"target_database_id": target})
    assert response.status_code == 202
    result = wait_restore(api, response.json()["id"])
    assert result["status"] == "completed", result["error"]
    assert pg.psql(CONTENT, "library_copy") == pg.psql(CONTENT, "library")


def test_restore_over_a_non_empty_database_needs_confirm(
    api: Client, pg: PostgresCluster, library: dict[str, Any],
) -> None:
    pg.create_database("library_busy")
    pg.psql("CREATE TABLE books (id int); INSERT INTO books VALUES (-1);"
            "CREATE TABLE keepme (x int)", "library_busy")
    target = api.register_postgres(pg, "library_busy", restore_target=True)
    refused = wait_restore(api, api.post(f"/backups/{library['id']}/restore",
                                         json={"target_database_id": target}).json()["id"])
    assert refused["status"] == "failed"
    assert "not empty" in refused["error"]
    assert f'"confirm": "{target}"' in refused["error"]
    assert pg.psql("SELECT count(*) FROM books", "library_busy") == "1"

    # `true` confirmed any target once; the target's id must be typed out now.
    old_style = api.post(f"/backups/{library['id']}/restore",
                         json={"target_database_id": target, "confirm": True})
    assert old_style.status_code == 422
    assert "send the target database id" in old_style.json()["message"]
    other_id = api.post(f"/backups/{library['id']}/restore",
                        json={"target_database_id": target, "confirm": "library"})
    assert other_id.status_code == 422 and target in other_id.json()["message"]
    assert pg.psql("SELECT count(*) FROM books", "library_busy") == "1"

    done = wait_restore(api, api.post(f"/backups/{library['id']}/restore",
                                      json={"target_database_id": target,
                                            "confirm": target}).json()["id"])
    assert done["status"] == "completed", done["error"]
    assert pg.psql(CONTENT, "library_busy") == pg.psql(CONTENT, "library")


def test_corrupt_artifact_fails_verification(api: Client, stack: Stack, pg: PostgresCluster,
                                             library: dict[str, Any]) -> None:
    db_id = api.register_postgres(pg, "library")
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    path = stack.storage_dir / backup["storage_key"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    flipped = wait_restore(api, api.post(f"/backups/{backup['id']}/verify").json()["id"])
    assert flipped["status"] == "failed"
    assert flipped["error"].startswith("corrupt: checksum mismatch: "), flipped["error"]
    assert "the gzip stream is corrupt" in flipped["error"]
    path.write_bytes(bytes(data[: len(data) // 3]))
    truncated = wait_restore(api, api.post(f"/backups/{backup['id']}/verify").json()["id"])
    assert truncated["status"] == "failed"
    assert truncated["error"].startswith("corrupt: checksum mismatch: "), truncated["error"]
    assert "the gzip stream is truncated" in truncated["error"]
    # (Artifacts of 50 MB and more, each compression, restore too: test_verify_large_e2e.)


def test_restore_bad_requests(api: Client, pg: PostgresCluster,
                              library: dict[str, Any]) -> None:
    ghost = "00000000-0000-0000-0000-000000000000"
    assert api.post(f"/backups/{ghost}/verify").status_code == 404
    assert api.post(f"/backups/{ghost}/restore", json={}).status_code == 404
    missing_target = api.post(f"/backups/{library['id']}/restore",
                              json={"target_database_id": "nope"})
    assert missing_target.status_code == 404 and "nope" in missing_target.json()["message"]
    bad = api.post(f"/backups/{library['id']}/restore", json={"confirm": "maybe"})
    assert bad.status_code == 422 and "confirm" in bad.json()["message"]
    failed_db = api.register_postgres(pg, "library", password="wrong-pw-77")
    failed = api.wait_backup(api.post("/backups", json={"database_id": failed_db}).json()["id"])
    assert api.post(f"/backups/{failed['id']}/verify").status_code == 409
    assert api.get("/restores/nope").status_code == 404
