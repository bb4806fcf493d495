"""A stack with beat processes: API, one worker and two beats, ticking every second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, start_stack
from tests.services import PostgresCluster, Process, Redis
from tests.worker.beat.helpers import StallingProxy

BUDGET = 4 * 1024 * 1024  # the catalog queries plus the first megabytes of the table

# Every second a beat reads the databases and fires due slots; cron itself still
# works in whole minutes, so tests that wait for a slot wait for a real minute.
SCHED_CONFIG = """
global:
  schedule: "0 2 * * *"
  compression: gzip
  retention_days: 14
  max_backups: 10
  max_parallel_jobs: 2
  beat_interval: 1
  heartbeat_timeout: 6
storage:
  type: local
"""


@pytest.fixture(scope="package")
def sched_pg_db(pg: PostgresCluster) -> str:
    """A small source database for scheduled backups."""
    pg.create_database("sched_src")
    pg.psql("CREATE TABLE t (id int PRIMARY KEY, v text);"
            "INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g", "sched_src")
    return "sched_src"


@pytest.fixture(scope="package")
def beat_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    """API + one worker + two beat processes, so every slot is raced by two schedulers."""
    stack = start_stack(workdir / "beat-stack", pg, redis, config=SCHED_CONFIG)
    beats = [Process(name, ["beat"], stack.env, stack.root / f"{name}.log").start()
             for name in ("beat1", "beat2")]
    stack.workers.extend(beats)  # so stack.logs() includes them
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()


@pytest.fixture(scope="package")
def big_db(pg: PostgresCluster) -> str:
    """About 30 MB of table data: far more than the proxy lets through."""
    pg.create_database("sched_big")
    pg.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS payload "
            "FROM generate_series(1, 400000) g", "sched_big")
    return "sched_big"


@pytest.fixture
def proxy(pg: PostgresCluster) -> Iterator[StallingProxy]:
    """A proxy to the test cluster through which every dump stalls mid-stream."""
    running = StallingProxy(pg.port, BUDGET).start()
    yield running
    running.close()
