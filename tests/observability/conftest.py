"""A stack of two API replicas and two workers, scraped by a real Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import Client, Stack, start_stack
from tests.observability.peers import Flower, Prometheus
from tests.services import PostgresCluster, Process, Redis, create_key, free_port, wait_http

# Yearly by default, so no database is overdue unless a test gives it a tight schedule;
# a grace of a few seconds so that one becomes overdue within the test.
OBS_CONFIG = """
global:
  schedule: "0 0 1 1 *"
  compression: gzip
  max_parallel_jobs: 2
  overdue_grace: 3
storage:
  type: local
databases:
  - id: obs-config
    engine: postgres
    host: 127.0.0.1
    port: ${TEST_PG_PORT}
    username: backup
    password: ${TEST_PG_PASSWORD}
    database_name: postgres
"""


@dataclass
class ObsStack:
    stack: Stack
    replica: Process
    replica_client: Client

    def logs(self) -> str:
        return self.stack.logs() + self.replica.log()


@pytest.fixture(scope="session")
def obs(tmp_path_factory: pytest.TempPathFactory, pg: PostgresCluster,
        redis: Redis) -> Iterator[ObsStack]:
    root = tmp_path_factory.mktemp("obs")
    stack = start_stack(root, pg, redis, config=OBS_CONFIG, workers=2)
    port = free_port()
    replica = Process("api2", ["api", "--host", "127.0.0.1", "--port", str(port)],
                      stack.env, root / "api2.log").start()
    client = Client(f"http://127.0.0.1:{port}")
    wait_http(client.base + "/health")
    running = ObsStack(stack, replica, client)
    yield running
    # running.replica, not replica: a test restarts the replica and puts the new one there.
    for process in [stack.api, running.replica, *stack.workers]:
        process.stop()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, obs: ObsStack) -> Iterator[Prometheus]:
    targets = [c.base.removeprefix("http://") for c in (obs.stack.client, obs.replica_client)]
    # A key of its own with the metrics scope only, made as an operator would.
    key = create_key(obs.stack.env, "prometheus", "metrics")
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), targets, key).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def flower(tmp_path_factory: pytest.TempPathFactory, obs: ObsStack) -> Iterator[Flower]:
    server = Flower(tmp_path_factory.mktemp("flower"), obs.stack.env["CELERY_BROKER_URL"]).start()
    yield server
    server.stop()


