"""A PostgreSQL backup through the API, restored with pg_restore to identical contents."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import threading
from pathlib import Path

import pytest
import zstandard

from tests.conftest import Client, Stack
from tests.services import (
    PG_BIN,
    PG_PASSWORD,
    PG_USER,
    PostgresCluster,
    closed_port,
    cmdlines,
)

SEED_SQL = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, born date,
                        balance numeric(12,2), tags text[], profile jsonb, photo bytea);
INSERT INTO customers (name, born, balance, tags, profile, photo)
SELECT 'customer ' || g, date '1980-01-01' + g, g * 1.25, ARRAY['t' || g % 7, 'x'],
       jsonb_build_object('n', g, 'nested', jsonb_build_object('even', g % 2 = 0)),
       decode(md5(g::text), 'hex')
FROM generate_series(1, 5000) AS g;
INSERT INTO customers (name, profile) VALUES ('Zoë ünïcødé 🚀', '{"quote": "it''s"}');
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id),
                     placed_at timestamptz DEFAULT now(), total numeric);
INSERT INTO orders (customer_id, total) SELECT (g % 5000) + 1, g FROM generate_series(1, 20000) g;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 10000;
"""

CONTENT_QUERY = (
    "SELECT md5(string_agg(c::text, ',' ORDER BY c.id)) FROM customers c "
    "UNION ALL SELECT md5(string_agg(o::text, ',' ORDER BY o.id)) FROM orders o "
    "UNION ALL SELECT count(*)::text FROM big_orders"
)


def _decompress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def _pg_restore(pg: PostgresCluster, dump: Path, database: str) -> None:
    pg.create_database(database)
    subprocess.run(
        [str(PG_BIN / "pg_restore"), "--no-owner", "--exit-on-error", "-h", "127.0.0.1",
         "-p", str(pg.port), "-U", PG_USER, "-d", database, str(dump)],
        env={**os.environ, "PGPASSWORD": PG_PASSWORD}, check=True, capture_output=True)


@pytest.fixture(scope="module")
def source_db(pg: PostgresCluster) -> str:
    pg.create_database("shop")
    pg.psql(SEED_SQL, "shop")
    return "shop"


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_backup_restores_to_identical_contents(
    api: Client, stack: Stack, pg: PostgresCluster, source_db: str, compression: str,
    tmp_path: Path,
) -> None:
    db_id = api.register_postgres(pg, source_db, compression=compression)
    created = api.post("/backups", json={"database_id": db_id})
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "pending"

    backup = api.wait_backup(created.json()["id"])
    assert backup["status"] == "completed", backup["error"]
    assert backup["compression"] == compression
    assert backup["error"] is None and backup["duration_seconds"] >= 0

    download = api.get(f"/backups/{backup['id']}/download")
    assert download.status_code == 200
    assert int(download.headers["Content-Length"]) == backup["size_bytes"] == len(download.content)
    assert "attachment" in download.headers["Content-Disposition"]
    assert hashlib.md5(download.content).hexdigest() == backup["checksum_md5"]
    assert hashlib.sha256(download.content).hexdigest() == backup["checksum_sha256"]

    # The artifact and its sidecar sit in local storage under the reported key.
    stored = stack.storage_dir / backup["storage_key"]
    assert stored.read_bytes() == download.content
    assert (stored.parent / (stored.name + ".json")).exists()

    dump = tmp_path / "restore.dump"
    dump.write_bytes(_decompress(download.content, compression))
    target = f"restored_{compression}"
    _pg_restore(pg, dump, target)
    assert pg.psql(CONTENT_QUERY, target) == pg.psql(CONTENT_QUERY, source_db)


def test_wrong_password_fails_readably_and_leaves_nothing(
    api: Client, stack: Stack, pg: PostgresCluster, source_db: str,
) -> None:
    secret = "definitely-Wrong-pw-9931"
    db_id = api.register_postgres(pg, source_db, password=secret)
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "failed"
    assert "password authentication failed" in backup["error"]
    assert "pg_dump exited with code 1" in backup["error"]
    assert secret not in backup["error"]
    assert backup["storage_key"] is None and backup["checksum_md5"] is None
    assert not (stack.storage_dir / db_id).exists()
    assert api.get(f"/backups/{backup['id']}/download").status_code == 409
    assert secret not in stack.logs()


def test_unreachable_database_fails_with_a_reason(api: Client, stack: Stack,
                                                  pg: PostgresCluster) -> None:
    port = closed_port()
    db_id = api.register_postgres(pg, "shop", host="127.0.0.1", port=port)
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "failed"
    # Refused, filtered or unknown: one sentence (the API is no port scanner); the worker
    # log keeps libpq's own words.
    assert backup["error"] == ("pg_dump exited with code 1: could not connect to the database "
                               f"server at 127.0.0.1:{port} (details in the worker log)")
    assert "Connection refused" in stack.logs()
    assert not (stack.storage_dir / db_id).exists()


def test_missing_database_on_server_fails(api: Client, stack: Stack, pg: PostgresCluster) -> None:
    db_id = api.register_postgres(pg, "no_such_database")
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "failed"
    assert 'database "no_such_database" does not exist' in backup["error"]




def test_one_backup_at_a_time_and_password_never_on_the_command_line(
    api: Client, stack: Stack, pg: PostgresCluster, silent_server: int,
) -> None:
    secret = "Hidden-From-ps-5521"
    db_id = api.register_postgres(pg, "shop", port=silent_server, password=secret)
    first = api.post("/backups", json={"database_id": db_id})
    assert first.status_code == 202
    second = api.post("/backups", json={"database_id": db_id})
    assert second.status_code == 409
    assert first.json()["id"] in second.json()["message"]

    # While pg_dump hangs on the silent server, look at every process's command line.
    seen_pg_dump = False
    for _ in range(50):
        for cmdline in cmdlines():
            if "pg_dump" in cmdline:
                seen_pg_dump = True
                assert secret not in cmdline
        if seen_pg_dump:
            break
        threading.Event().wait(0.2)
    assert seen_pg_dump, "pg_dump never showed up in the process list"

    backup = api.wait_backup(first.json()["id"], timeout=60)
    assert backup["status"] == "failed"
    assert secret not in backup["error"]
    # Once it ended, a new backup may start.
    third = api.post("/backups", json={"database_id": db_id})
    assert third.status_code == 202


def test_delete_backup_removes_artifact(api: Client, stack: Stack, pg: PostgresCluster,
                                        source_db: str) -> None:
    db_id = api.register_postgres(pg, source_db)
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "completed"
    path = stack.storage_dir / backup["storage_key"]
    assert path.exists()
    assert api.delete(f"/backups/{backup['id']}").status_code == 204
    assert not path.exists()
    assert not Path(str(path) + ".json").exists()
    assert api.get(f"/backups/{backup['id']}").status_code == 404


def test_config_managed_database_backs_up(api: Client, stack: Stack) -> None:
    body = api.get("/databases/config-managed").json()
    assert body["managed_by"] == "config" and body["password_set"] is True
    backup = api.wait_backup(
        api.post("/backups", json={"database_id": "config-managed"}).json()["id"])
    assert backup["status"] == "completed", backup["error"]

