"""Attacks through a database's connection settings, against real processes. Each must fail.

- Re-pointing a registered database at a server that asks for a cleartext password
  (tests/fake_postgres.py) must not hand it the stored password.
- ``options.pg_bin_dir`` naming a directory with a fake ``pg_dump`` is refused by the
  API, and the worker never runs it, even from a row that holds one.
- A connection string as ``database_name`` must not connect anywhere else.
- The dump tools get none of the worker's secrets in their environment.
- Refused, filtered and non-database ports fail with one sentence (no port scanner).
- ``global.allowed_hosts`` refuses a host outside the list, at registration and when
  the backup starts (nothing connects).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from shared.engines.base import TOOL_ENVIRONMENT
from tests.conftest import Client, Stack
from tests.fake_postgres import CleartextTrap
from tests.services import PG_PASSWORD, PG_USER, PostgresCluster, closed_port

UNREACHABLE = ("pg_dump exited with code 1: could not connect to the database server at "
               "127.0.0.1:{port} (details in the worker log)")


@pytest.fixture
def trap() -> Iterator[CleartextTrap]:
    running = CleartextTrap().start()
    yield running
    running.close()


@pytest.fixture(scope="module")
def small_db(pg: PostgresCluster) -> str:
    pg.create_database("attack_src")
    pg.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)", "attack_src")
    return "attack_src"


def backup_of(api: Client, db_id: str, timeout: float = 120) -> dict[str, Any]:
    created = api.post("/backups", json={"database_id": db_id})
    assert created.status_code == 202, created.text
    return api.wait_backup(created.json()["id"], timeout=timeout)


def metadata_sql(stack: Stack, pg: PostgresCluster, sql: str) -> None:
    """Change a row behind the API's back (a row stored before a rule, a DNS change)."""
    pg.psql(sql, stack.env["DATABASE_URL"].rsplit("/", 1)[1])


def test_repointing_a_database_does_not_send_its_stored_password(
        api: Client, pg: PostgresCluster, small_db: str, trap: CleartextTrap) -> None:
    db_id = api.register_postgres(pg, small_db)
    assert backup_of(api, db_id)["status"] == "completed"

    patched = api.patch(f"/databases/{db_id}", {"port": trap.port})
    assert patched.status_code == 200 and patched.json()["password_set"] is False
    backup = backup_of(api, db_id)
    assert backup["status"] == "failed"
    assert "fe_sendauth: no password supplied" in backup["error"]  # what the user must fix
    assert trap.connections >= 1  # the trap was asked (the probe, then pg_dump)...
    assert trap.passwords == []  # ...and got no password
    assert PG_PASSWORD.encode() not in trap.everything()

    # A password typed in the same request goes where the request says: the user's choice.
    chosen = "Typed-In-This-Request-1"
    patched = api.patch(f"/databases/{db_id}", {"port": trap.port, "password": chosen})
    assert patched.json()["password_set"] is True
    assert "password authentication failed" in backup_of(api, db_id)["error"]
    assert set(trap.passwords) == {chosen}
    assert PG_PASSWORD.encode() not in trap.everything()


@pytest.mark.parametrize(("change", "clears"), [
    ({"host": "localhost"}, True),
    ({"port": 5433}, True),
    ({"username": "someone_else"}, True),
    ({"database_name": "payroll"}, True),
    ({"options": {"sslmode": "require"}}, True),
    ({"host": "127.0.0.1", "port": 5432}, False),  # the values it has: nothing moved
    ({"name": "Renamed", "schedule": "@daily", "restore_target": True}, False),
])
def test_which_changes_drop_the_stored_password(api: Client, change: dict[str, Any],
                                                clears: bool) -> None:
    db_id = f"repoint-{uuid.uuid4().hex[:8]}"
    created = api.post("/databases", json={
        "id": db_id, "engine": "postgres", "host": "127.0.0.1", "port": 5432,
        "username": "app", "password": "Stored-pw-1", "database_name": "app"})
    assert created.status_code == 201, created.text
    patched = api.patch(f"/databases/{db_id}", change)
    assert patched.status_code == 200, patched.text
    assert patched.json()["password_set"] is (not clears)


def test_a_fake_pg_dump_through_pg_bin_dir_is_refused_and_never_runs(
        api: Client, stack: Stack, pg: PostgresCluster, small_db: str, tmp_path: Path) -> None:
    bin_dir, ran = tmp_path / "bin", tmp_path / "fake-pg_dump-ran"
    bin_dir.mkdir()
    for tool in ("pg_dump", "pg_restore"):
        (bin_dir / tool).write_text(f'#!/bin/sh\nenv > {ran}\n'
                                    'echo "pg_dump (PostgreSQL) 15.0"\n')
        (bin_dir / tool).chmod(0o755)
    options = {"pg_bin_dir": str(bin_dir)}
    refused = api.post("/databases", json={
        "id": "fake-bin", "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
        "database_name": small_db, "options": options})
    assert refused.status_code == 422
    assert "options.pg_bin_dir" in refused.json()["message"]
    assert "config-only" in refused.json()["message"]
    db_id = api.register_postgres(pg, small_db)
    patched = api.patch(f"/databases/{db_id}", {"options": options})
    assert patched.status_code == 422 and "pg_bin_dir" in patched.json()["message"]

    # A row that holds one anyway (stored before the rule existed): the worker refuses.
    metadata_sql(stack, pg, f"UPDATE databases SET options = '{{\"pg_bin_dir\": "
                            f"\"{bin_dir}\"}}' WHERE id = '{db_id}'")
    backup = backup_of(api, db_id)
    assert backup["status"] == "failed"
    assert "options.pg_bin_dir: is config-only" in backup["error"]
    assert not ran.exists(), "the fake pg_dump ran"


def test_a_connection_string_as_database_name_connects_nowhere_else(
        api: Client, pg: PostgresCluster, small_db: str, trap: CleartextTrap) -> None:
    names = [f"postgresql://{PG_USER}@127.0.0.1:{trap.port}/{small_db}",
             f"host=127.0.0.1 port={trap.port} dbname={small_db}"]
    source = api.register_postgres(pg, small_db)
    completed = backup_of(api, source)
    assert completed["status"] == "completed", completed["error"]
    for name in names:
        db_id = api.register_postgres(pg, name, restore_target=True)
        backup = backup_of(api, db_id)
        assert backup["status"] == "failed"
        # The registered server answered about a database of that (odd) name.
        assert f'database "{name}" does not exist' in backup["error"]
        # Restores reach it through psycopg (the probe, the emptiness check) and pg_restore.
        for confirm in (None, db_id):
            job = api.post(f"/backups/{completed['id']}/restore",
                           json={"target_database_id": db_id, "confirm": confirm})
            assert job.status_code == 202, job.text
            restore = api.wait_done(f"/restores/{job.json()['id']}")
            assert restore["status"] == "failed"
            assert f'database "{name}" does not exist' in restore["error"]
    assert trap.connections == 0


def _pg_dump_environ(port: int, timeout: float = 40) -> dict[str, str]:
    """Return the environment of the pg_dump connecting to ``port``, read from /proc."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, [p.name for p in Path("/proc").iterdir()]):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if not argv[0].endswith(b"pg_dump") or str(port).encode() not in argv:
                    continue
                raw = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if item)
        time.sleep(0.1)
    raise AssertionError("pg_dump never showed up in the process list")


def test_tools_get_none_of_the_workers_secrets_and_a_filtered_port_says_no_more(
        api: Client, stack: Stack, pg: PostgresCluster, silent_server: int) -> None:
    worker = stack.workers[0].process
    assert worker is not None
    worker_env = Path(f"/proc/{worker.pid}/environ").read_bytes()
    assert b"DATABASE_URL=" in worker_env  # the worker has secrets worth keeping

    db_id = api.register_postgres(pg, "postgres", port=silent_server)
    created = api.post("/backups", json={"database_id": db_id})
    env = _pg_dump_environ(silent_server)  # hangs on the silent server: time to look
    needed = {"PGPASSFILE", "PGCONNECT_TIMEOUT", "PGAPPNAME"}
    assert set(env) <= set(TOOL_ENVIRONMENT) | needed, set(env) - set(TOOL_ENVIRONMENT)
    assert needed <= set(env)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "TEST_API_KEY", "TEST_PG_PASSWORD",
                 "BACKUP_API_SECRET_KEY"):
        assert stack.env[name] not in env.values()

    backup = api.wait_backup(created.json()["id"], timeout=90)
    assert backup["error"] == UNREACHABLE.format(port=silent_server)
    assert "timeout expired" in stack.logs()  # the worker log keeps libpq's words


@pytest.fixture
def not_a_database() -> Iterator[int]:
    """A port where a web server answers (an open port, but no database)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with closing(conn):
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    server.close()


def test_refused_and_non_database_ports_fail_alike(api: Client, pg: PostgresCluster,
                                                   not_a_database: int) -> None:
    for port in (closed_port(), not_a_database):
        backup = backup_of(api, api.register_postgres(pg, "postgres", port=port))
        assert backup["error"] == UNREACHABLE.format(port=port)


def test_allowed_hosts_refuse_a_host_outside_the_list(guarded: Client,
                                                      pg: PostgresCluster) -> None:
    body = {"engine": "postgres", "port": pg.port, "username": PG_USER,
            "password": PG_PASSWORD, "database_name": "guard_prod"}
    for host in ("192.0.2.10", "127.0.0.2", "nohost.invalid"):
        refused = guarded.post("/databases", json={"id": "outside", "host": host, **body})
        assert refused.status_code == 422, refused.text
        assert refused.json()["message"] == (
            f"host: host {host!r} is not in global.allowed_hosts")
    socket_path = guarded.post("/databases", json={"id": "outside", "host": "/tmp", **body})
    assert socket_path.status_code == 422 and "Unix socket" in socket_path.json()["message"]
    inside = guarded.register_postgres(pg, "guard_prod")
    moved = guarded.patch(f"/databases/{inside}", {"host": "127.0.0.2"})
    assert moved.status_code == 422 and "allowed_hosts" in moved.json()["message"]
    # A listed name matches itself, without asking DNS (here it resolves nowhere).
    listed = guarded.post("/databases", json={"id": "listed-name",
                                              "host": "db.allowed.invalid", **body})
    assert listed.status_code == 201, listed.text


def test_a_host_outside_the_list_fails_the_backup_before_anything_connects(
        guarded: Client, guarded_stack: Stack, pg: PostgresCluster) -> None:
    outside = CleartextTrap(host="127.0.0.2").start()
    try:
        db_id = guarded.register_postgres(pg, "guard_prod")
        # Where the host points changed after registration (a DNS answer, a row from
        # before the list): here the row itself, password kept.
        metadata_sql(guarded_stack, pg, f"UPDATE databases SET host = '127.0.0.2', "
                                        f"port = {outside.port} WHERE id = '{db_id}'")
        backup = backup_of(guarded, db_id)
        assert backup["status"] == "failed"
        assert backup["error"] == "host '127.0.0.2' is not in global.allowed_hosts"
        assert outside.connections == 0
    finally:
        outside.close()
