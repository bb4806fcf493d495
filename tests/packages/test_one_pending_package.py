"""At most one pending package: a flood of package requests cannot fill the queue.

The attack (issue 12): 300 ``POST /packages/create`` were all accepted in 2 s, and a
backup queued after them waited 75 s. Now the first is accepted and every other one
answers 409 naming it, until it has started; racing requests cannot both win (a
partial unique index), and the beat's scheduled package records a visible failure
instead of a second pending package.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, insert, select, update

from shared.context import Context
from shared.jobs import PACKAGE_TASK, new_package
from shared.metadata_db import MetadataDB
from shared.metrics.counters import read
from shared.metrics.record import PACKAGES_TOTAL
from shared.models import Database, Package, utcnow
from tests.conftest import Stack, start_stack
from tests.contexts import METADATA_DBS, make_context
from tests.services import REPO, PostgresCluster, Redis
from worker.beat.jobs import package_jobs
from worker.beat.scheduler import fire_if_due

FLOOD = 300


@pytest.fixture(scope="module")
def idle_stack(workdir: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    """API without a worker at first: a package stays pending until one is started."""
    stack = start_stack(workdir / "one-pending-package", pg, redis, workers=0)
    yield stack
    for process in [stack.api, *stack.workers]:
        process.stop()


def test_a_flood_of_package_requests_queues_one(idle_stack: Stack) -> None:
    api = idle_stack.client
    first = api.post("/packages/create", json={"database_ids": ["config-managed"]})
    assert first.status_code == 202, first.text
    pending = first.json()["id"]
    started = time.monotonic()
    statuses = []
    for _ in range(FLOOD - 1):
        response = api.post("/packages/create", json={"database_ids": ["config-managed"]})
        statuses.append(response.status_code)
    assert set(statuses) == {409}, statuses
    assert time.monotonic() - started < 60
    refused = api.post("/packages/create").json()
    assert pending in refused["message"] and "already pending" in refused["message"]
    rows = api.get("/packages", params={"page_size": 100}).json()
    assert [row["id"] for row in rows] == [pending]

    # Once a worker has taken it, the next package is accepted.
    idle_stack.start_worker("worker1")
    # (It fails, the database having no backup yet: what matters is that it was taken.)
    assert api.wait_done(f"/packages/{pending}")["status"] in ("completed", "failed")
    second = api.post("/packages/create")
    assert second.status_code == 202, second.text
    api.wait_done(f"/packages/{second.json()['id']}")


def test_racing_requests_make_one_pending_package(idle_stack: Stack) -> None:
    api = idle_stack.client
    for worker in idle_stack.workers:  # nobody takes the package during the race
        worker.stop()
    start = threading.Barrier(16)
    statuses: list[int] = []

    def request() -> None:
        start.wait()
        statuses.append(api.post("/packages/create").status_code)

    threads = [threading.Thread(target=request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] + [409] * 15, statuses
    pending = api.get("/packages", params={"status": "pending"}).json()
    assert len(pending) == 1


# --- the beat's scheduled package --------------------------------------------------------


@pytest.fixture(params=METADATA_DBS)
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Context:
    context = make_context(request, tmp_path, 'package-conf:\n  schedule: "* * * * *"\n')
    with context.db.session() as session:
        session.add(Database(id="shop", name="shop", engine="postgres", host="localhost",
                             port=5432, database_name="shop", options={}, package=True,
                             created_at=utcnow() - timedelta(hours=1)))
    return context


def test_a_scheduled_package_while_one_is_pending_is_a_visible_failure(ctx: Context) -> None:
    with ctx.db.session() as session:
        manual = new_package(ctx)
        session.add(manual)
    sent: list[tuple[str, list[str]]] = []
    with ctx.db.session() as session:
        [job] = package_jobs(ctx, session, lambda task, args: sent.append((task, args)))
    now = utcnow()
    assert fire_if_due(ctx, job, now)
    assert sent == []
    with ctx.db.session() as session:
        scheduled = session.scalars(select(Package).where(Package.trigger == "schedule")).all()
        assert [row.status for row in scheduled] == ["failed"]
        assert manual.id in (scheduled[0].error or "")
        assert "skipped the scheduled package" in (scheduled[0].error or "")
        assert read(session, PACKAGES_TOTAL) == {'{"status":"failed"}': 1.0}
        # The manual one has started: the next slot records its package and sends it.
        session.execute(update(Package).where(Package.id == manual.id)
                        .values(status="running"))
    assert fire_if_due(ctx, job, now + timedelta(minutes=1))
    with ctx.db.session() as session:
        fresh = session.scalar(select(Package).where(Package.status == "pending"))
        assert fresh is not None and fresh.trigger == "schedule"
    assert sent == [(PACKAGE_TASK, [fresh.id])]


# --- the migration over data that breaks the new rule ----------------------------------


def _upgrade(url: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(REPO / "shared" / "migrations"))
    engine = create_engine(url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    engine.dispose()


@pytest.mark.parametrize("dialect", METADATA_DBS)
def test_the_migration_keeps_the_newest_pending_package(dialect: str, tmp_path: Path,
                                                        request: pytest.FixtureRequest) -> None:
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path}/meta.db"
    else:
        pg: PostgresCluster = request.getfixturevalue("pg")
        name = f"mig_{uuid.uuid4().hex[:8]}"
        pg.create_database(name)
        url = pg.url(name)
    _upgrade(url, "0004_api_keys")
    db = MetadataDB(url)
    now = utcnow()
    # Only the columns revision 0004 has: the model's later columns are not there yet.
    with db.session() as session:
        session.execute(insert(Package.__table__), [
            {"id": f"00000000-0000-0000-0000-00000000000{age}", "status": "pending",
             "trigger": "manual", "format": "zip", "storage": "local",
             "created_at": now - timedelta(minutes=age), "backups": [], "missing": []}
            for age in (3, 2, 1)])
    _upgrade(url, "head")
    with db.session() as session:
        rows = {row.id[-1]: row for row in session.scalars(select(Package))}
    assert {key: row.status for key, row in rows.items()} == {
        "1": "pending", "2": "failed", "3": "failed"}
    assert "superseded" in (rows["2"].error or "")
    db.sql_engine.dispose()
