"""Flower, run like the compose service, shows each kind of job's queue and its length."""

from __future__ import annotations

import time
from typing import Any

from tests.observability.conftest import ObsStack
from tests.observability.peers import Flower

QUEUES = {"backups", "packages", "restores", "retention"}


def test_flower_lists_the_queue_of_each_kind_of_job(obs: ObsStack, flower: Flower) -> None:
    assert obs.stack.workers, "the workers consume every queue by default"
    lengths: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while not QUEUES <= set(lengths) and time.monotonic() < deadline:
        flower.get("/api/workers?refresh=1")  # Flower learns the queues from the workers
        body = flower.get("/api/queues/length").json()
        lengths = {queue["name"]: queue["messages"] for queue in body["active_queues"]}
        time.sleep(0.5)
    assert QUEUES <= set(lengths), lengths
    workers = flower.get("/api/workers").json()
    for name, info in workers.items():
        assert {q["name"] for q in info.get("active_queues", [])} == QUEUES, name
