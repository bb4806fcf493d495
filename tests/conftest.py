"""Session fixtures: a real PostgreSQL cluster, Redis, and the API and worker processes."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests import peers
from tests.services import (
    PG_PASSWORD,
    PG_USER,
    REDIS_DATABASES,
    TEST_API_KEY,
    TEST_SECRET_KEY,
    PostgresCluster,
    Process,
    Redis,
    free_port,
    running_cluster,
    silent_tcp_server,
    wait_http,
)

# The MinIO server fixtures (a real S3 peer).
pytest_plugins = ["tests.minio"]


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backup-api")


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresCluster]:
    with running_cluster("backup-api-pg-") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis(workdir: Path) -> Iterator[Redis]:
    server = Redis(workdir / "redis")
    server.start()
    yield server
    server.stop()


@dataclass
class Client:
    """A thin HTTP client for the API under test, sending ``key`` (None: no key)."""

    base: str
    key: str | None = TEST_API_KEY
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        if self.key:
            self.session.headers["Authorization"] = f"Bearer {self.key}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=30, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.session.post(self.base + path, json=json, timeout=30, **kw)

    def patch(self, path: str, json: Any = None) -> requests.Response:
        return self.session.patch(self.base + path, json=json, timeout=30)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.session.delete(self.base + path, timeout=30, **kw)

    def wait_done(self, path: str, timeout: float = 120) -> dict[str, Any]:
        """Poll ``path`` until its status leaves pending/running; return the final body."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get(path).json()
            if body["status"] in ("completed", "failed", "cancelled"):
                return body
            time.sleep(0.3)
        raise AssertionError(f"{path} still {body['status']} after {timeout}s")

    def wait_backup(self, backup_id: str, timeout: float = 120) -> dict[str, Any]:
        return self.wait_done(f"/backups/{backup_id}", timeout)

    def register_postgres(self, pg: PostgresCluster, database: str, **extra: Any) -> str:
        db_id = extra.pop("id", f"pg-{uuid.uuid4().hex[:8]}")
        body = {"id": db_id, "engine": "postgres", "host": "127.0.0.1", "port": pg.port,
                "username": PG_USER, "password": PG_PASSWORD, "database_name": database,
                **extra}
        response = self.post("/databases", json=body)
        assert response.status_code == 201, response.text
        return db_id


@dataclass
class Stack:
    """The product as a user runs it: API and worker processes sharing config and DB."""

    root: Path
    env: dict[str, str]
    api: Process
    workers: list[Process]
    client: Client

    @property
    def storage_dir(self) -> Path:
        return self.root / "data" / "backups"

    def logs(self) -> str:
        return self.api.log() + "".join(w.log() for w in self.workers)

    def start_worker(self, name: str, **env: str) -> Process:
        worker = Process(name, ["worker", f"--hostname={name}@%h", "--concurrency=2"],
                         {**self.env, **env}, self.root / f"{name}.log").start()
        self.workers.append(worker)
        return worker


# One Redis database per stack: a stack sharing another's database would have its
# tasks taken by the other's worker (the suite starts more than Redis's default 16).
_REDIS_DBS = itertools.count(1)

STACK_CONFIG = """
global:
  schedule: "0 2 * * *"
  compression: gzip
  retention_days: 14
  max_backups: 10
  max_parallel_jobs: 2
storage:
  type: local
databases:
  - id: config-managed
    name: Declared in config.yaml
    engine: postgres
    host: 127.0.0.1
    port: ${TEST_PG_PORT}
    username: backup
    password: ${TEST_PG_PASSWORD}
    database_name: ${TEST_CONFIG_DB:-postgres}
package-conf:
  compression: zip
"""

# Appended to a stack's config unless it has an auth section: the key Client sends.
TEST_AUTH = """
auth:
  keys:
    - name: tests
      scopes: [admin]
      key: ${TEST_API_KEY}
"""


def start_stack(root: Path, pg: PostgresCluster, redis: Redis, config: str = STACK_CONFIG,
                workers: int = 1) -> Stack:
    root.mkdir(parents=True, exist_ok=True)
    meta = f"meta_{uuid.uuid4().hex[:8]}"
    pg.create_database(meta)
    if not any(line.startswith("auth:") for line in config.splitlines()):
        config += TEST_AUTH
    (root / "config.yaml").write_text(config)
    env = {
        "BACKUP_API_CONFIG": str(root / "config.yaml"),
        "BACKUP_API_DATA_DIR": str(root / "data"),
        "DATABASE_URL": pg.url(meta),
        "CELERY_BROKER_URL": f"{redis.url.rsplit('/', 1)[0]}/{next(_REDIS_DBS) % REDIS_DATABASES}",
        "TEST_PG_PORT": str(pg.port),
        "TEST_PG_PASSWORD": PG_PASSWORD,
        "TEST_API_KEY": TEST_API_KEY,
        "BACKUP_API_SECRET_KEY": TEST_SECRET_KEY,
    }
    port = free_port()
    api = Process("api", ["api", "--host", "127.0.0.1", "--port", str(port)], env,
                  root / "api.log").start()
    stack = Stack(root=root, env=env, api=api, workers=[],
                  client=Client(f"http://127.0.0.1:{port}"))
    for index in range(workers):
        stack.start_worker(f"worker{index + 1}")
    wait_http(stack.client.base + "/health", process=api)
    return stack


@pytest.fixture(scope="session")
def stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    running = start_stack(workdir / "stack", pg, redis)
    yield running
    for process in [running.api, *running.workers]:
        process.stop()


@pytest.fixture(scope="session")
def api(stack: Stack) -> Client:
    return stack.client


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts and never answers: a dump tool hangs until its timeout."""
    with silent_tcp_server() as port:
        yield port


# Peers (MinIO, FerretDB, mongodump/mongorestore): one way to need one, one summary.
# A missing binary skips the tests that need it with the reason (tests/peers.py); the
# summary makes those skips visible in the last lines of the run, where CI logs end.

def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_peer(*binaries): the test runs these peer binaries (e.g. "
        "mongodump); skipped without them, failed under BACKUP_API_REQUIRE_PEERS=1")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test whose marked peer is missing, before its fixtures start anything."""
    for binary in _marked_peers(item):
        peers.require(binary)


def _marked_peers(item: pytest.Item) -> list[str]:
    return [str(b) for marker in item.iter_markers("requires_peer") for b in marker.args]


@pytest.fixture(autouse=True)
def _note_peer_use(request: pytest.FixtureRequest) -> Iterator[None]:
    """Record which peers the test used, once all its fixtures (even dynamic ones) are up."""
    yield
    peers.LEDGER.note_use(request.node.nodeid, request.fixturenames, _marked_peers(request.node))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    peers.LEDGER.note_report(report)


# Outermost wrapper: the block comes after pytest's short test summary (the skip reasons)
# and right before its closing "N passed, M skipped" line.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    yield
    terminalreporter.write_sep("-", "peers")
    for line in peers.LEDGER.lines():
        terminalreporter.write_line(line)
