"""Backup metrics scraped by a real Prometheus from two API replicas, two workers behind."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Client
from tests.observability.conftest import ObsStack
from tests.observability.peers import Prometheus
from tests.services import PostgresCluster, Process, wait_http

WRONG_PASSWORD = "obs-Wrong-pw-6120"


def eventually(check: Callable[[], Any], timeout: float = 60, every: float = 0.5) -> Any:
    """Return the first truthy result of ``check`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s; last result: {last!r}")


def scrape(client: Client) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Return every sample of the API's ``/metrics`` keyed by (name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture(scope="module")
def shop(pg: PostgresCluster) -> str:
    pg.create_database("obs_shop")
    pg.psql("CREATE TABLE items AS SELECT g AS id, md5(g::text) AS name "
            "FROM generate_series(1, 20000) g", "obs_shop")
    return "obs_shop"


def test_counters_histogram_gauges_and_alerts_in_prometheus(
    obs: ObsStack, prometheus: Prometheus, pg: PostgresCluster, shop: str,
) -> None:
    api = obs.stack.client
    good = api.register_postgres(pg, shop)
    # Every minute: with a grace of 3 s it is overdue a minute after registration.
    bad = api.register_postgres(pg, shop, password=WRONG_PASSWORD, schedule="* * * * *")

    # Both series exist at 0 before anything ran, so increase() sees the first failure.
    def zero_series() -> bool:
        found = prometheus.query(f'backup_api_backups_total{{database_id="{bad}"}}')
        statuses = sorted(r["metric"]["status"] for r in found)  # scraped from two APIs
        return (statuses == ["cancelled"] * 2 + ["completed"] * 2 + ["failed"] * 2
                and all(float(r["value"][1]) == 0 for r in found))
    eventually(zero_series)

    ok = api.wait_backup(api.post("/backups", json={"database_id": good}).json()["id"])
    failed = api.wait_backup(api.post("/backups", json={"database_id": bad}).json()["id"])
    assert ok["status"] == "completed", ok["error"]
    assert failed["status"] == "failed"

    def per_replica(expr: str) -> list[float]:
        return sorted(float(r["value"][1]) for r in prometheus.query(expr))

    # Both API replicas report the same cluster-wide values.
    eventually(lambda: per_replica(f'backup_api_backups_total{{database_id="{bad}",'
                                   'status="failed"}') == [1.0, 1.0])
    eventually(lambda: per_replica(f'backup_api_backups_total{{database_id="{good}",'
                                   'status="completed"}') == [1.0, 1.0])
    one = f'max(backup_api_backups_total{{database_id="{good}",engine="postgres",status='
    assert prometheus.value(one + '"failed"})') == 0
    assert prometheus.value(f'max(backup_api_backups_total{{database_id="{bad}",'
                            'status="completed"})') == 0

    # The histogram: one completed backup, its duration in the right bucket.
    hist = f'{{database_id="{good}",engine="postgres"}}'
    assert prometheus.value(f"max(backup_api_backup_duration_seconds_count{hist})") == 1
    total = prometheus.value(f"max(backup_api_backup_duration_seconds_sum{hist})")
    assert total == pytest.approx(ok["duration_seconds"], abs=0.01)
    buckets = {r["metric"]["le"]: float(r["value"][1]) for r in prometheus.query(
        f"max by (le) (backup_api_backup_duration_seconds_bucket{hist})")}
    assert buckets["+Inf"] == 1
    for le, count in buckets.items():
        assert count == (1 if float(le) >= ok["duration_seconds"] else 0), (le, count)
    p50 = prometheus.value(
        f"histogram_quantile(0.5, max by (le) (backup_api_backup_duration_seconds_bucket{hist}))")
    assert p50 is not None and not math.isnan(p50)
    assert prometheus.value(f"max(backup_api_backup_duration_seconds_count"
                            f'{{database_id="{bad}"}})') == 0

    # Gauges derived from rows.
    assert prometheus.value(
        f'max(backup_api_backup_size_bytes{{database_id="{good}"}})') == ok["size_bytes"]
    finished = datetime.fromisoformat(ok["finished_at"]).timestamp()
    assert prometheus.value(f'max(backup_api_backup_last_success_timestamp_seconds'
                            f'{{database_id="{good}"}})') == pytest.approx(finished, abs=0.01)
    assert prometheus.query(
        f'backup_api_backup_last_success_timestamp_seconds{{database_id="{bad}"}}') == []
    assert prometheus.value("max(backup_api_backups_in_progress)") == 0
    assert prometheus.value('max(backup_api_packages_total{status="failed"})') == 0
    assert prometheus.value("min(backup_api_workers_online)") == 2
    assert prometheus.value("min(backup_api_metadata_db_up)") == 1
    assert prometheus.query('flask_http_request_duration_seconds_count'
                            '{url_rule="/backups/<backup_id>"}') != []

    # A package is counted and its size exported, from whichever worker built it.
    created = api.post("/packages/create", json={"database_ids": [good]})
    assert created.status_code == 202, created.text
    package = api.wait_done(f"/packages/{created.json()['id']}")
    assert package["status"] == "completed", package["error"]
    eventually(lambda: prometheus.value(
        'max(backup_api_packages_total{status="completed"})') == 1)
    assert prometheus.value("max(backup_api_package_size_bytes)") == package["size_bytes"]

    # The alert rules shipped in deploy/prometheus/alerts.yml fire on these series.
    def alert(name: str, database_id: str) -> bool:
        return any(a["labels"]["alertname"] == name and
                   a["labels"].get("database_id") == database_id for a in prometheus.firing())
    eventually(lambda: alert("BackupFailed", bad), timeout=30)
    assert not alert("BackupFailed", good)

    # Overdue: the every-minute database has no success a minute (+3 s grace) later.
    eventually(lambda: prometheus.value(
        f'max(backup_api_backup_overdue{{database_id="{bad}"}})') == 1, timeout=120)
    assert prometheus.value(f'max(backup_api_backup_overdue{{database_id="{good}"}})') == 0
    eventually(lambda: alert("BackupOverdue", bad), timeout=30)
    assert not alert("BackupOverdue", good)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket that never answers: pg_dump waits until its connect timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_in_progress_gauge_counts_a_running_backup(obs: ObsStack, pg: PostgresCluster,
                                                   silent_port: int) -> None:
    api = obs.stack.client
    db_id = api.register_postgres(pg, "postgres", port=silent_port)
    backup = api.post("/backups", json={"database_id": db_id}).json()
    eventually(lambda: sample(scrape(api), "backup_api_backups_in_progress") == 1, timeout=30)
    assert api.wait_backup(backup["id"], timeout=60)["status"] == "failed"
    samples = scrape(obs.replica_client)
    assert sample(samples, "backup_api_backups_in_progress") == 0
    assert sample(samples, "backup_api_backups_total", database_id=db_id, engine="postgres",
                  status="failed") == 1


def test_counters_survive_an_api_restart(obs: ObsStack, pg: PostgresCluster, shop: str) -> None:
    api = obs.replica_client
    db_id = obs.stack.client.register_postgres(pg, shop)
    done = obs.stack.client.wait_backup(
        obs.stack.client.post("/backups", json={"database_id": db_id}).json()["id"])
    assert done["status"] == "completed"
    key = {"database_id": db_id, "engine": "postgres", "status": "completed"}
    assert sample(scrape(api), "backup_api_backups_total", **key) == 1

    obs.replica.stop()
    restarted = Process(obs.replica.name, obs.replica.argv, obs.replica.env,
                        obs.replica.log_path).start()
    obs.replica = restarted
    wait_http(api.base + "/health")
    samples = scrape(api)
    assert sample(samples, "backup_api_backups_total", **key) == 1
    assert sample(samples, "backup_api_backup_duration_seconds_count",
                  database_id=db_id, engine="postgres") == 1
