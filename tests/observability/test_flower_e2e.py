"""Flower, configured by environment like the compose service, shows backup tasks."""

from __future__ import annotations

import ast
import time
from typing import Any

from tests.observability.conftest import ObsStack
from tests.observability.peers import Flower
from tests.services import PostgresCluster


def test_flower_shows_the_backup_task_by_name_and_id(obs: ObsStack, flower: Flower,
                                                     pg: PostgresCluster) -> None:
    assert flower.get("/api/tasks", auth=False).status_code == 401
    assert flower.get("/api/workers?refresh=1").status_code == 200

    api = obs.stack.client
    db_id = api.register_postgres(pg, "postgres")
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "completed"

    task: dict[str, Any] | None = None
    deadline = time.monotonic() + 30
    while task is None and time.monotonic() < deadline:
        tasks = flower.get("/api/tasks?taskname=backups.run").json()
        task = next((t for t in tasks.values()
                     if t.get("args") and backup["id"] in ast.literal_eval(t["args"])
                     and t.get("state") == "SUCCESS"), None)
        time.sleep(0.5)
    assert task is not None, "Flower never showed the backup task"
    assert task["name"] == "backups.run"
    assert ast.literal_eval(task["args"]) == [backup["id"]]
    assert task["worker"].startswith("worker")
