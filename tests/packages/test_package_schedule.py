"""The scheduler's hook: one package per schedule slot, however often it is called."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from shared.config import load_settings
from shared.context import Context
from tests.packages.conftest import PackageStack
from tests.services import PostgresCluster
from worker.celery_app import make_celery
from worker.package_schedule import package_jobs
from worker.scheduler import fire_if_due


def test_a_slot_yields_exactly_one_package_built_by_the_worker(
    packages: PackageStack, pg: PostgresCluster,
) -> None:
    db = packages.client.register_postgres(pg, "postgres", id="scheduled-db", package=True)
    backup = packages.backup(db)
    settings = load_settings(packages.stack.env["BACKUP_API_CONFIG"],
                             env={**os.environ, **packages.stack.env})
    ctx = Context.from_settings(settings)
    celery = make_celery(settings)
    sent: list[str] = []

    def send(task: str, args: list[str]) -> None:
        assert task == "packages.run"
        sent.extend(args)
        celery.send_task(task, args=args)

    with ctx.db.session() as session:
        (job,) = package_jobs(ctx, session, send)
    # The first slot after the packaged database was registered: tomorrow 05:00 UTC.
    slot = (datetime.now(UTC) + timedelta(days=1)).replace(hour=5, minute=0, second=0,
                                                          microsecond=0)
    just_after = slot.replace(minute=1)
    # Two beats (or a retried pass) reach the same slot: one package.
    assert fire_if_due(ctx, job, just_after) is True
    assert fire_if_due(ctx, job, just_after) is False
    assert len(sent) == 1
    package_id = sent[0]
    package = packages.wait_package(package_id)
    assert package["status"] == "completed", package["error"]
    assert package["trigger"] == "schedule"
    assert package["scheduled_for"].startswith(slot.strftime("%Y-%m-%dT05:00:00"))
    assert package["backups"] == [{"database_id": db, "backup_id": backup["id"]}]
    listed = packages.client.get("/packages").json()
    assert [p["scheduled_for"] for p in listed].count(package["scheduled_for"]) == 1
    ctx.db.engine.dispose()
