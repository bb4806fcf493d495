"""Scheduled test restores: source databases, a second PostgreSQL server as a scratch
server, and a stack with one worker and two beats verifying every minute."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, start_stack
from tests.services import PG_PASSWORD, PG_USER, PostgresCluster, Process, Redis, running_cluster

SHOP = "verify_shop"
DAMAGED = "verify_damaged"
ELSEWHERE = "verify_elsewhere"
TABLESPACE = "verify_ts"

# About 40 MB of tables in two schemas (partitions included), like a small shop.
SHOP_SEED = """
CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE, name text, joined date);
INSERT INTO customers SELECT g, 'user' || g || '@example.com', 'Customer ' || g,
    date '2020-01-01' + g % 1500 FROM generate_series(1, 40000) g;
CREATE TABLE products (id int PRIMARY KEY, title text, price numeric(10, 2));
INSERT INTO products SELECT g, 'Product ' || md5(g::text), (g % 500) + 0.99
FROM generate_series(1, 3000) g;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers,
    placed_at timestamptz, note text);
INSERT INTO orders SELECT g, 1 + g % 40000, timestamptz '2024-01-01' + g * interval '1 minute',
    md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)
FROM generate_series(1, 250000) g;
CREATE TABLE order_lines (order_id bigint REFERENCES orders, product_id int REFERENCES products,
    qty int, PRIMARY KEY (order_id, product_id));
INSERT INTO order_lines SELECT o, 1 + (o + k * 1000) % 3000, k FROM generate_series(1, 250000) o,
    generate_series(1, 2) k;
CREATE TABLE events (id bigint, at date, payload text) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO events SELECT g, date '2024-01-01' + g % 700, repeat('e', 40)
FROM generate_series(1, 60000) g;
CREATE TABLE empty_table (id int);
CREATE SCHEMA audit;
CREATE TABLE audit.log (id serial PRIMARY KEY, message text);
INSERT INTO audit.log (message) SELECT 'changed ' || g FROM generate_series(1, 5000) g;
"""

SMALL_SEED = """
CREATE TABLE items (id int PRIMARY KEY, body text);
INSERT INTO items SELECT g, md5(g::text) || md5((-g)::text) FROM generate_series(1, 60000) g;
CREATE TABLE tags (id int PRIMARY KEY, name text);
INSERT INTO tags SELECT g, 'tag' || g FROM generate_series(1, 500) g;
"""

VERIFY_CONFIG = """
global:
  schedule: "0 2 * * *"
  compression: gzip
  retention_days: 14
  max_backups: 10
  max_parallel_jobs: 2
  beat_interval: 1
  heartbeat_timeout: 6
  verify:
    schedule: "* * * * *"
    test_restore: true
storage:
  type: local
databases:
  - id: shop
    engine: postgres
    host: 127.0.0.1
    port: {pg_port}
    username: {user}
    password: {password}
    database_name: {shop}
  - id: damaged
    engine: postgres
    host: 127.0.0.1
    port: {pg_port}
    username: {user}
    password: {password}
    database_name: {damaged}
  - id: elsewhere
    engine: postgres
    host: 127.0.0.1
    port: {pg_port}
    username: {user}
    password: {password}
    database_name: {elsewhere}
    verify:
      scratch:
        host: 127.0.0.1
        port: {scratch_port}
        username: {user}
        password: {password}
        engine: postgres
"""


@pytest.fixture(scope="package")
def scratch_pg() -> Iterator[PostgresCluster]:
    """A second PostgreSQL server: a scratch server without the source's tablespace."""
    with running_cluster("backup-api-scratch-pg-") as cluster:
        yield cluster


@pytest.fixture(scope="package")
def sources(pg: PostgresCluster) -> dict[str, str]:
    """The three source databases: a realistic shop, a small one to damage, and one
    with a table in a tablespace only its own server has."""
    pg.create_database(SHOP)
    pg.psql(SHOP_SEED, SHOP)
    pg.psql("ANALYZE", SHOP)
    pg.create_database(DAMAGED)
    pg.psql(SMALL_SEED, DAMAGED)
    location = pg.root / "ts_verify"
    location.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(location, "postgres", "postgres")
    pg.psql(f"CREATE TABLESPACE {TABLESPACE} LOCATION '{location}'")
    pg.create_database(ELSEWHERE)
    pg.psql(SMALL_SEED + f"CREATE TABLE archived (id int) TABLESPACE {TABLESPACE};"
            "INSERT INTO archived SELECT generate_series(1, 100);", ELSEWHERE)
    return {"shop": SHOP, "damaged": DAMAGED, "elsewhere": ELSEWHERE}


@pytest.fixture(scope="package")
def verify_stack(workdir: Path, pg: PostgresCluster, scratch_pg: PostgresCluster, redis: Redis,
                 sources: dict[str, str]) -> Iterator[Stack]:
    """API + one worker + two beats, verifying every database's latest backup each minute."""
    config = VERIFY_CONFIG.format(pg_port=pg.port, scratch_port=scratch_pg.port, user=PG_USER,
                                  password=PG_PASSWORD, shop=SHOP, damaged=DAMAGED,
                                  elsewhere=ELSEWHERE)
    stack = start_stack(workdir / "verify-stack", pg, redis, config=config)
    beats = [Process(name, ["beat"], stack.env, stack.root / f"{name}.log").start()
             for name in ("beat1", "beat2")]
    stack.workers.extend(beats)
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()
