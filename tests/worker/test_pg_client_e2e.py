"""The worker runs the pg_dump matching the server (PostgreSQL 15 here) and records it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shared.engines.pg_client import client_major
from tests.conftest import Client, Stack
from tests.services import PG_BIN, REPO, PostgresCluster


def _server_version(pg: PostgresCluster) -> str:
    return pg.psql("SHOW server_version_num")


def test_backup_uses_the_client_matching_the_server(api: Client, stack: Stack,
                                                    pg: PostgresCluster) -> None:
    major = int(_server_version(pg)) // 10000
    db_id = api.register_postgres(pg, "postgres")
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "completed", backup["error"]
    sidecar = json.loads((stack.storage_dir / (backup["storage_key"] + ".json")).read_text())
    assert sidecar["tools"]["server_major"] == str(major)
    assert sidecar["tools"]["pg_dump"].startswith(f"(PostgreSQL) {major}.")


# options.pg_bin_dir chooses the program the worker runs: config only (the API answers
# 422, tests/worker/test_attacks_connections_e2e.py); these databases are declared in the
# guarded stack's config (tests/worker/conftest.py).
def test_pg_bin_dir_option_selects_the_client(guarded: Client, guarded_stack: Stack) -> None:
    backup = guarded.wait_backup(guarded.post("/backups", json={"database_id": "pinned-client"})
                                 .json()["id"])
    assert backup["status"] == "completed", backup["error"]
    sidecar = json.loads((guarded_stack.storage_dir / (backup["storage_key"] + ".json"))
                         .read_text())
    major = client_major(str(PG_BIN / "pg_dump"))
    assert sidecar["tools"]["pg_dump"].startswith(f"(PostgreSQL) {major}.")


def test_pg_bin_dir_without_pg_dump_fails_readably(guarded: Client, guarded_stack: Stack,
                                                   workdir: Path) -> None:
    backup = guarded.wait_backup(guarded.post("/backups", json={"database_id": "no-client"})
                                 .json()["id"])
    assert backup["status"] == "failed"
    assert backup["error"] == f"options.pg_bin_dir: no working pg_dump in {workdir}/no-client"
    assert backup["storage_key"] is None
    assert not (guarded_stack.storage_dir / "no-client").exists()


def test_unknown_postgres_option_is_refused(api: Client, pg: PostgresCluster) -> None:
    response = api.post("/databases", json={
        "id": "pg-bad-option", "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
        "database_name": "postgres", "options": {"sslmode": "sometimes", "oplog": True}})
    assert response.status_code == 422
    message = response.json()["message"]
    assert "options.sslmode: must be one of disable" in message
    assert "options.oplog: unknown option for engine postgres" in message


def test_check_config_lists_installed_clients(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("databases:\n  - {id: shop, engine: postgres, database_name: shop}\n"
                      "  - {id: pinned, engine: postgres, database_name: shop,"
                      f" options: {{pg_bin_dir: {tmp_path}}}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "cli", "check-config", str(config)], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert f"15 ({PG_BIN})" in json.loads(result.stdout)["tools"]["pg_dump"]
    assert result.returncode == 0
    assert (f"warning: pinned: options.pg_bin_dir: no working pg_dump in {tmp_path}"
            in result.stderr)
