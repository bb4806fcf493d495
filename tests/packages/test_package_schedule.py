"""The scheduler's hook: one package per schedule slot, however often it is called."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from shared.config import load_settings
from shared.context import Context
from tests.packages.conftest import PackageStack
from tests.services import PostgresCluster
from worker.celery_app import make_celery
from worker.package_schedule import create_scheduled_package


def test_a_slot_yields_exactly_one_package_built_by_the_worker(
    packages: PackageStack, pg: PostgresCluster,
) -> None:
    db = packages.client.register_postgres(pg, "postgres", id="scheduled-db", package=True)
    backup = packages.backup(db)
    settings = load_settings(packages.stack.env["BACKUP_API_CONFIG"],
                             env={**os.environ, **packages.stack.env})
    ctx = Context.from_settings(settings)
    make_celery(settings)  # the scheduler's process has its Celery app; the hook uses it
    slot = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)

    package_id = create_scheduled_package(ctx, slot)
    assert package_id is not None
    assert create_scheduled_package(ctx, slot) is None  # a second beat, or a retried tick
    other_slot = create_scheduled_package(ctx, slot.replace(day=27))
    assert other_slot not in (None, package_id)

    package = packages.wait_package(package_id)
    assert package["status"] == "completed", package["error"]
    assert package["trigger"] == "schedule"
    assert package["scheduled_for"].startswith("2026-11-26T05:00:00")
    assert package["backups"] == [{"database_id": db, "backup_id": backup["id"]}]
    listed = packages.client.get("/packages").json()
    assert [p["scheduled_for"] for p in listed].count(package["scheduled_for"]) == 1
    ctx.db.engine.dispose()
