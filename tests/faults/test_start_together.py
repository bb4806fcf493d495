"""Every role of a cluster started at the same moment, as ``docker compose up`` does.

API, workers and beat each migrate the metadata DB and upsert the databases and API keys
declared in config.yaml when they start. Started together on an empty metadata DB, two
of them once inserted the same database row and the loser died on a unique violation
(the API never answered /health). Each round starts them all at once and checks every
one comes up and stays up, with every declared database and key stored once.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import Client
from tests.services import (
    PG_PASSWORD,
    REDIS_DATABASES,
    TEST_API_KEY,
    TEST_SECRET_KEY,
    PostgresCluster,
    Process,
    Redis,
    backup_api_cli,
    free_port,
    wait_http,
)

pytestmark = pytest.mark.faults

DATABASES = 40
ROUNDS = 3


def _config() -> str:
    entries = "".join(f"""
  - id: db{index:02d}
    engine: postgres
    host: 127.0.0.1
    port: ${{TEST_PG_PORT}}
    username: backup
    password: ${{TEST_PG_PASSWORD}}
    database_name: postgres
""" for index in range(DATABASES))
    return f"""
global:
  schedule: "0 2 * * *"
  compression: gzip
storage:
  type: local
databases:{entries}
auth:
  keys:
    - name: tests
      scopes: [admin]
      key: ${{TEST_API_KEY}}
    - name: grafana
      scopes: [metrics]
      key: bak_{"m" * 43}
"""


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_api_workers_and_beat_started_together_all_come_up(
        round_: int, tmp_path: Path, pg: PostgresCluster, redis: Redis) -> None:
    meta = f"meta_together_{uuid.uuid4().hex[:8]}"
    pg.create_database(meta)
    (tmp_path / "config.yaml").write_text(_config())
    env = {
        "BACKUP_API_CONFIG": str(tmp_path / "config.yaml"),
        "BACKUP_API_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": pg.url(meta),
        "CELERY_BROKER_URL": f"{redis.url.rsplit('/', 1)[0]}/{REDIS_DATABASES - 1 - round_}",
        "TEST_PG_PORT": str(pg.port),
        "TEST_PG_PASSWORD": PG_PASSWORD,
        "TEST_API_KEY": TEST_API_KEY,
        "BACKUP_API_SECRET_KEY": TEST_SECRET_KEY,
    }
    port = free_port()
    roles = [
        Process("api", ["api", "--host", "127.0.0.1", "--port", str(port)], env,
                tmp_path / "api.log"),
        *(Process(f"worker{n}", ["worker", f"--hostname=together{n}@%h", "--concurrency=1"],
                  env, tmp_path / f"worker{n}.log") for n in (1, 2)),
        *(Process(f"beat{n}", ["beat"], env, tmp_path / f"beat{n}.log") for n in (1, 2)),
    ]
    for role in roles:
        role.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process=roles[0])
        time.sleep(5)  # the slowest role finishes its start-up sync meanwhile
        for role in roles:
            assert role.process is not None
            assert role.process.poll() is None, f"{role.name} exited:\n{role.log()[-3000:]}"
            assert "UniqueViolation" not in role.log(), role.log()[-3000:]
        client = Client(f"http://127.0.0.1:{port}")
        listed = client.get("/databases", params={"page_size": 100}).json()
        items = listed["items"] if isinstance(listed, dict) else listed
        assert sorted(db["id"] for db in items) == [f"db{n:02d}" for n in range(DATABASES)]
        keys = backup_api_cli(env, "keys", "list")
        assert keys.returncode == 0, keys.stderr
        assert "tests" in keys.stdout and "grafana" in keys.stdout
    finally:
        for role in roles:
            role.stop()
