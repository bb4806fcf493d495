"""options.globals_passwords (config-only), with zstd and age: the globals artifact is
compressed and encrypted like the dump, and the roles restored onto a new server can log
in with their passwords.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.age import AgeKey, make_key
from tests.conftest import Client, Stack, start_stack
from tests.services import PG_BIN, PostgresCluster, Redis

OWNER_PASSWORD = "owner-Pass-5521"
CONFIG = """
global:
  compression: zstd
  max_parallel_jobs: 2
  encryption:
    type: age
    recipients: ["@RECIPIENT@"]
    identity_file: "@IDENTITY@"
storage:
  type: local
databases:
  - id: with-passwords
    engine: postgres
    host: 127.0.0.1
    port: ${TEST_PG_PORT}
    username: backup
    password: ${TEST_PG_PASSWORD}
    database_name: globals_pw_src
    options:
      globals: true
      globals_passwords: true
"""


@pytest.fixture(scope="module")
def key(workdir: Path) -> AgeKey:
    root = workdir / "globals-age"
    root.mkdir(exist_ok=True)
    return make_key(root / "key.txt")


@pytest.fixture(scope="module")
def pw_stack(workdir: Path, pg: PostgresCluster, redis: Redis, key: AgeKey) -> Iterator[Stack]:
    pg.create_database("globals_pw_src")
    pg.psql(f"CREATE ROLE glob_pw_owner LOGIN PASSWORD '{OWNER_PASSWORD}'")
    pg.psql("CREATE TABLE ledger AS SELECT g AS id FROM generate_series(1, 100) g; "
            "ALTER TABLE ledger OWNER TO glob_pw_owner", "globals_pw_src")
    config = CONFIG.replace("@RECIPIENT@", key.recipient).replace("@IDENTITY@", str(key.path))
    stack = start_stack(workdir / "globals-pw-stack", pg, redis, config=config)
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()


@pytest.fixture(scope="module")
def new_server() -> Iterator[PostgresCluster]:
    root = Path(tempfile.mkdtemp(prefix="backup-api-pw-server-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PostgresCluster(root)
    cluster.start()
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_passwords_travel_encrypted_and_restored_roles_log_in(
        pw_stack: Stack, new_server: PostgresCluster) -> None:
    api: Client = pw_stack.client
    backup = api.wait_backup(
        api.post("/backups", json={"database_id": "with-passwords"}).json()["id"])
    assert backup["status"] == "completed", backup["error"]
    assert backup["globals_key"].endswith(".globals.sql.zst.age")
    stored = (pw_stack.storage_dir / backup["globals_key"]).read_bytes()
    assert stored.startswith(b"age-encryption.org/v1")
    assert b"SCRAM-SHA-256" not in stored and b"glob_pw_owner" not in stored

    new_server.create_database("ledger")
    target = api.register_postgres(new_server, "ledger", restore_target=True)
    response = api.post(f"/backups/{backup['id']}/restore",
                        json={"target_database_id": target, "globals": True})
    assert response.status_code == 202, response.text
    restore: dict[str, Any] = api.wait_done(f"/restores/{response.json()['id']}", 180)
    assert restore["status"] == "completed", restore["error"]
    assert new_server.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'ledger'",
                           "ledger") == "glob_pw_owner"
    # The restored role logs in to the new server with the password it had on the old one.
    login = subprocess.run(
        [str(PG_BIN / "psql"), "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(new_server.port),
         "-U", "glob_pw_owner", "-d", "ledger", "-c", "SELECT count(*) FROM ledger"],
        env={**os.environ, "PGPASSWORD": OWNER_PASSWORD}, capture_output=True, text=True)
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == "100"
