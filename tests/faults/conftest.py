"""Stacks whose parts the fault tests break: their own Redis, a beat, fast timeouts.

Every fault is injected into a real process (Redis, PostgreSQL, MinIO, a worker) and
judged by what a user sees afterwards through the HTTP API. Run them alone with
``pytest -m faults``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, start_stack
from tests.faults.helpers import ThrottledProxy
from tests.services import PostgresCluster, Process, Redis, running_cluster
from tests.worker.beat.helpers import StallingProxy

# Beat passes every second; a worker silent for 6 s is dead; a lost message is re-sent
# after 10 s. max_attempts is the default, written out.
FAULT_CONFIG = """
global:
  schedule: "0 2 * * *"
  compression: gzip
  max_parallel_jobs: 2
  beat_interval: 1
  heartbeat_timeout: 6
  max_attempts: 2
storage:
  type: local
"""

# About 30 MB of table data: at RATE bytes a second through the proxy a dump takes ~10 s.
RATE = 3 * 1024 * 1024


@pytest.fixture(scope="package")
def source_db(pg: PostgresCluster) -> str:
    pg.create_database("faults_src")
    pg.psql("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((-g)::text) AS payload "
            "FROM generate_series(1, 400000) g", "faults_src")
    return "faults_src"


@pytest.fixture
def slow_pg(pg: PostgresCluster) -> Iterator[ThrottledProxy]:
    """The test cluster behind a proxy that makes each dump last about ten seconds."""
    proxy = ThrottledProxy(pg.port, RATE).start()
    yield proxy
    proxy.close()


@pytest.fixture
def stalled_pg(pg: PostgresCluster) -> Iterator[StallingProxy]:
    """The test cluster behind a proxy through which every dump stalls after 4 MB."""
    proxy = StallingProxy(pg.port, 4 * 1024 * 1024).start()
    yield proxy
    proxy.close()


@pytest.fixture
def meta_pg() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for one stack's metadata DB, which the test may stop."""
    with running_cluster("backup-api-meta-") as cluster:
        yield cluster


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Redis]:
    """A Redis for one test, which it may kill, restart or flush (no persistence)."""
    server = Redis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


StackFactory = Callable[..., Stack]


@pytest.fixture
def fault_stack(tmp_path: Path) -> Iterator[StackFactory]:
    """Start API + beat (+ workers) on the given PostgreSQL and Redis; stop them after."""
    stacks: list[Stack] = []

    def make(pg: PostgresCluster, redis: Redis, config: str = FAULT_CONFIG,
             workers: int = 1) -> Stack:
        stack = start_stack(tmp_path / f"stack{len(stacks)}", pg, redis, config=config,
                            workers=workers)
        stacks.append(stack)
        stack.workers.append(Process("beat", ["beat"], stack.env,
                                     stack.root / "beat.log").start())
        return stack

    yield make
    for stack in stacks:
        for process in [stack.api, *stack.workers]:
            process.stop(timeout=60)


def start_worker(stack: Stack, name: str, *options: str) -> Process:
    """Start ``backup-api worker`` with ``options`` (e.g. ``--grace-period=3``)."""
    worker = Process(name, ["worker", f"--hostname={name}@%h", "--concurrency=2", *options],
                     stack.env, stack.root / f"{name}.log").start()
    stack.workers.append(worker)
    return worker
