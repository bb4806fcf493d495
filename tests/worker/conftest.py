"""A guarded stack: ``global.allowed_hosts`` set, config databases with and without
``restore_target`` (the attack tests in test_attacks_*.py), and config databases with
``options.pg_bin_dir``, which only the config may set (test_pg_client_e2e.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Client, Stack, start_stack
from tests.services import PG_BIN, PostgresCluster, Redis

GUARDED_CONFIG = """
global:
  schedule: "0 2 * * *"
  max_parallel_jobs: 2
  allowed_hosts: ["127.0.0.1/32", "db.allowed.invalid"]
storage:
  type: local
databases:
  - id: prod
    engine: postgres
    host: 127.0.0.1
    port: ${TEST_PG_PORT}
    username: backup
    password: ${TEST_PG_PASSWORD}
    database_name: guard_prod
  - id: staging
    engine: postgres
    host: 127.0.0.1
    port: ${TEST_PG_PORT}
    username: backup
    password: ${TEST_PG_PASSWORD}
    database_name: guard_staging
    restore_target: true
  - id: pinned-client
    engine: postgres
    host: 127.0.0.1
    port: ${TEST_PG_PORT}
    username: backup
    password: ${TEST_PG_PASSWORD}
    database_name: postgres
    options: {pg_bin_dir: "@PG_BIN@"}
  - id: no-client
    engine: postgres
    host: 127.0.0.1
    port: ${TEST_PG_PORT}
    username: backup
    password: ${TEST_PG_PASSWORD}
    database_name: postgres
    options: {pg_bin_dir: "@NO_CLIENT@"}
"""

PROD_ROWS = "CREATE TABLE orders (id int PRIMARY KEY, item text);" \
            "INSERT INTO orders SELECT g, 'real order ' || g FROM generate_series(1, 50) g"


@pytest.fixture(scope="package")
def guarded_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    for name in ("guard_prod", "guard_staging"):
        pg.create_database(name)
        pg.psql(PROD_ROWS, name)
    no_client = workdir / "no-client"
    no_client.mkdir()
    config = GUARDED_CONFIG.replace("@PG_BIN@", str(PG_BIN)).replace("@NO_CLIENT@",
                                                                      str(no_client))
    stack = start_stack(workdir / "guarded-stack", pg, redis, config=config)
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()


@pytest.fixture(scope="package")
def guarded(guarded_stack: Stack) -> Client:
    return guarded_stack.client
