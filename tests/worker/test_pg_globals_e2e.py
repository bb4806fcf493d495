"""options.globals: a PostgreSQL backup carries its roles, and a restore onto a new server
recreates them so the dump's owners and grants restore too. Real servers throughout: the
session cluster is the source, a second cluster started here is the new server.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Client, Stack
from tests.services import PostgresCluster

ROLES = ("glob_owner", "glob_reader", "Glob Auditor")


@pytest.fixture(scope="module")
def source(pg: PostgresCluster) -> str:
    """A database whose table belongs to a role of its own, with grants to two others."""
    pg.create_database("globals_src")
    pg.psql("CREATE ROLE glob_owner LOGIN PASSWORD 'owner-Secret-981'; "
            "CREATE ROLE glob_reader NOLOGIN; CREATE ROLE \"Glob Auditor\" NOLOGIN; "
            "GRANT glob_reader TO glob_owner")
    pg.psql("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS ref "
            "FROM generate_series(1, 5000) g; ALTER TABLE orders OWNER TO glob_owner; "
            "GRANT SELECT ON orders TO glob_reader; "
            "GRANT SELECT ON orders TO \"Glob Auditor\"", "globals_src")
    return "globals_src"


def _server_dir(prefix: str) -> Path:
    """A directory the PostgreSQL server may use (not under pytest's 0700 temp root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:  # the clusters then run as the postgres user
        shutil.chown(path, "postgres", "postgres")
    return path


@pytest.fixture(scope="module")
def new_server() -> Iterator[PostgresCluster]:
    """A freshly initialised cluster: only its bootstrap role exists."""
    root = _server_dir("backup-api-new-server-")
    cluster = PostgresCluster(root)
    cluster.start()
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def backup(api: Client, pg: PostgresCluster, source: str) -> dict[str, Any]:
    db_id = api.register_postgres(pg, source, options={"globals": True})
    body = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert body["status"] == "completed", body["error"]
    return body


def _roles(cluster: PostgresCluster) -> set[str]:
    return set(cluster.psql("SELECT rolname FROM pg_roles").splitlines())


def _restore(api: Client, backup_id: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/backups/{backup_id}/restore", json=body)
    assert response.status_code == 202, response.text
    return api.wait_done(f"/restores/{response.json()['id']}", timeout=180)


def test_the_globals_are_stored_beside_the_dump_without_passwords(
        api: Client, stack: Stack, backup: dict[str, Any]) -> None:
    key = backup["globals_key"]
    assert key and key.endswith(".globals.sql.gz")
    assert key.replace(".globals.sql", ".dump") == backup["storage_key"]
    assert (stack.storage_dir / key).is_file()
    download = api.get(f"/backups/{backup['id']}/globals")
    assert download.status_code == 200
    script = gzip.decompress(download.content).decode()
    assert "CREATE ROLE glob_owner;" in script and 'CREATE ROLE "Glob Auditor";' in script
    assert "GRANT glob_reader TO glob_owner" in script
    assert "SCRAM-SHA-256" not in script and "PASSWORD" not in script  # --no-role-passwords
    # The dump itself downloads as before, unchanged by the globals beside it.
    dump = api.get(f"/backups/{backup['id']}/download")
    assert dump.status_code == 200 and dump.content[:2] == b"\x1f\x8b"


def test_a_restore_onto_a_new_server_recreates_roles_and_ownership(
        api: Client, backup: dict[str, Any], new_server: PostgresCluster) -> None:
    assert not set(ROLES) & _roles(new_server)
    new_server.create_database("app")
    target = api.register_postgres(new_server, "app", restore_target=True)

    restore = _restore(api, backup["id"], target_database_id=target, globals=True)
    assert restore["status"] == "completed", restore["error"]
    assert restore["globals"] is True
    assert set(ROLES) <= _roles(new_server)
    # The role the restore connects as exists there and was left as it is.
    assert "CREATE ROLE backup" in restore["details"]["globals"]["skipped"]
    assert new_server.psql("SELECT pg_has_role('glob_owner', 'glob_reader', 'member')") == "t"
    assert new_server.psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'glob_owner'") == "t"
    assert new_server.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'",
                           "app") == "glob_owner"
    assert new_server.psql("SELECT has_table_privilege('Glob Auditor', 'orders', 'SELECT'), "
                           "has_table_privilege('glob_reader', 'orders', 'SELECT')",
                           "app") == "t|t"
    assert new_server.psql("SELECT count(*) FROM orders", "app") == "5000"

    # Again over it: the roles exist now, and are skipped rather than failing.
    again = _restore(api, backup["id"], target_database_id=target, globals=True, confirm=target)
    assert again["status"] == "completed", again["error"]
    assert "CREATE ROLE glob_owner" in again["details"]["globals"]["skipped"]


def test_without_globals_the_restore_owns_everything_itself(
        api: Client, backup: dict[str, Any], new_server: PostgresCluster) -> None:
    new_server.create_database("plain")
    target = api.register_postgres(new_server, "plain", restore_target=True)
    restore = _restore(api, backup["id"], target_database_id=target)
    assert restore["status"] == "completed", restore["error"]
    assert restore["globals"] is False and "globals" not in restore["details"]
    assert new_server.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'",
                           "plain") == "backup"


def test_a_missing_tablespace_directory_fails_before_the_dump_is_restored(
        api: Client, pg: PostgresCluster, new_server: PostgresCluster) -> None:
    # A tablespace on the source whose directory the new server does not have.
    location = _server_dir("backup-api-fast-disk-")
    pg.create_database("globals_ts")
    pg.psql(f"CREATE TABLESPACE glob_fast LOCATION '{location}'")
    try:
        pg.psql("CREATE TABLE t AS SELECT 1 AS x", "globals_ts")
        db_id = api.register_postgres(pg, "globals_ts", options={"globals": True})
        backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
        assert backup["status"] == "completed", backup["error"]
    finally:
        pg.psql("DROP TABLESPACE glob_fast")
        shutil.rmtree(location, ignore_errors=True)
    new_server.create_database("ts_target")
    target = api.register_postgres(new_server, "ts_target", restore_target=True)
    restore = _restore(api, backup["id"], target_database_id=target, globals=True)
    assert restore["status"] == "failed"
    assert restore["error"].startswith("applying the globals failed, nothing was restored:")
    assert "glob_fast" in restore["error"] or "fast-disk" in restore["error"]
    assert new_server.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                           "ts_target") == "0"


def test_delete_removes_the_globals_with_the_dump(api: Client, stack: Stack, pg: PostgresCluster,
                                                  source: str) -> None:
    db_id = api.register_postgres(pg, source, options={"globals": True})
    body = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    files = [stack.storage_dir / body["globals_key"], stack.storage_dir / body["storage_key"]]
    assert all(path.is_file() for path in files)
    assert api.delete(f"/backups/{body['id']}").status_code == 204
    assert not any(path.exists() for path in files)


def test_globals_requests_on_a_backup_without_them_are_refused(
        api: Client, pg: PostgresCluster, source: str) -> None:
    db_id = api.register_postgres(pg, source)
    body = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert body["status"] == "completed" and body["globals_key"] is None
    response = api.post(f"/backups/{body['id']}/restore", json={"globals": True})
    assert response.status_code == 409
    assert "options.globals was off" in response.json()["message"]
    assert api.get(f"/backups/{body['id']}/globals").status_code == 404


@pytest.mark.parametrize("options, message", [
    ({"globals": True, "globals_passwords": True}, "is config-only"),
    ({"globals": "yes"}, "must be true or false"),
])
def test_password_hashes_are_config_only(api: Client, pg: PostgresCluster,
                                         options: dict[str, Any], message: str) -> None:
    response = api.post("/databases", json={
        "id": "globals-refused", "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
        "database_name": "postgres", "options": options})
    assert response.status_code == 422
    assert message in response.json()["message"]
