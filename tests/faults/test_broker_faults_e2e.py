"""Redis fails: killed while backups run and wait, or emptied with backups pending."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import StackFactory
from tests.faults.helpers import ThrottledProxy, redis_command
from tests.services import PostgresCluster, Redis
from tests.worker.beat.helpers import wait_until

pytestmark = pytest.mark.faults


def test_redis_killed_during_backups_loses_nothing_and_the_worker_keeps_consuming(
    fault_stack: StackFactory, pg: PostgresCluster, own_redis: Redis, source_db: str,
    slow_pg: ThrottledProxy,
) -> None:
    stack = fault_stack(pg, own_redis)
    api = stack.client
    # Two backups running on the worker's two slots, a third waiting in the queue.
    dbs = [api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
           for _ in range(3)]
    ids = [api.post("/backups", json={"database_id": db}).json()["id"] for db in dbs]
    wait_until(lambda: sum(api.get(f"/backups/{i}").json()["status"] == "running"
                           for i in ids) == 2, 60, "two backups running")

    assert own_redis.process is not None
    own_redis.process.kill()  # no persistence: the queued message is gone with it
    own_redis.process.wait()
    time.sleep(3)
    own_redis.start()

    for backup_id in ids:
        done = api.wait_backup(backup_id, timeout=120)
        assert done["status"] == "completed", done["error"]
        assert done["attempt"] == 1
    worker = stack.workers[0]
    assert worker.process is not None and worker.process.poll() is None
    assert "Unrecoverable error" not in worker.log()
    assert "exited unexpectedly" not in worker.log()  # it reconnected, no restart needed
    # And it still consumes: the next backup runs.
    again = api.post("/backups", json={"database_id": dbs[0]}).json()["id"]
    assert api.wait_backup(again, timeout=60)["status"] == "completed"


def test_redis_emptied_with_backups_pending_loses_none(
    fault_stack: StackFactory, pg: PostgresCluster, own_redis: Redis, source_db: str,
    slow_pg: ThrottledProxy,
) -> None:
    """As a Redis without persistence that restarts, or FLUSHALL: the queued messages are
    gone, the pending rows are not, and the beat sends them again."""
    stack = fault_stack(pg, own_redis)
    api = stack.client
    # Two backups keep the worker's two slots busy; two more wait in the queue.
    dbs = [api.register_postgres(pg, source_db, port=slow_pg.port, compression="none")
           for _ in range(4)]
    ids = [api.post("/backups", json={"database_id": db}).json()["id"] for db in dbs]
    wait_until(lambda: sum(api.get(f"/backups/{i}").json()["status"] == "running"
                           for i in ids) == 2, 60, "two backups running")

    assert redis_command(own_redis.port, "FLUSHALL") == b"+OK"
    assert redis_command(own_redis.port, "DBSIZE") == b":0"

    for backup_id in ids:
        done = api.wait_backup(backup_id, timeout=120)
        assert done["status"] == "completed", done["error"]
    assert "enqueued it again" in stack.logs()
