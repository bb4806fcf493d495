"""Our exposition writer writes what prometheus_client's would, byte for byte."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from api.metrics_text import Exposition, labels

ODD_ID = 'we"ird\\id\n'
BUCKETS = [("1.0", 0.0), ("15.0", 2.0), ("+Inf", 3.0)]


def _theirs() -> str:
    counter = CounterMetricFamily("backup_api_backups", "Finished backups\nby outcome",
                                  labels=["status", "database_id", "engine"])
    counter.add_metric(["completed", "shop", "postgres"], 3)
    counter.add_metric(["failed", ODD_ID, "mongodb"], 0.5)
    histogram = HistogramMetricFamily("backup_api_backup_duration_seconds", "Dur\\ation",
                                      labels=["engine", "database_id"])
    histogram.add_metric(["postgres", "shop"], BUCKETS, 1e7)
    gauge = GaugeMetricFamily("backup_api_backup_size_bytes", "Size", labels=["database_id"])
    gauge.add_metric(["shop"], 12345678901.0)
    gauge.add_metric(["crm"], math.inf)
    families: list[Metric] = [
        counter, histogram, gauge, GaugeMetricFamily("backup_api_workers_online", "Workers",
                                                     value=2),
        GaugeMetricFamily("backup_api_package_size_bytes", "No sample yet")]

    class Families:
        def collect(self) -> list[Metric]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families())
    return generate_latest(registry).decode()


def test_the_text_equals_prometheus_clients() -> None:
    out = Exposition()
    out.family("backup_api_backups_total", "counter", "Finished backups\nby outcome")
    out.sample("backup_api_backups_total",
               labels(status="completed", database_id="shop", engine="postgres"), 3)
    out.sample("backup_api_backups_total",
               labels(status="failed", database_id=ODD_ID, engine="mongodb"), 0.5)
    out.family("backup_api_backup_duration_seconds", "histogram", "Dur\\ation")
    out.histogram("backup_api_backup_duration_seconds",
                  labels(engine="postgres", database_id="shop"), BUCKETS, 1e7)
    out.family("backup_api_backup_size_bytes", "gauge", "Size")
    out.sample("backup_api_backup_size_bytes", labels(database_id="shop"), 12345678901.0)
    out.sample("backup_api_backup_size_bytes", labels(database_id="crm"), math.inf)
    out.family("backup_api_workers_online", "gauge", "Workers")
    out.sample("backup_api_workers_online", "", 2)
    out.family("backup_api_package_size_bytes", "gauge", "No sample yet")
    assert out.text() == _theirs()
