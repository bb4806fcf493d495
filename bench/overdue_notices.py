"""Benchmark: what ``backup_overdue`` notifications cost the beat, at 1,000 databases and
100,000 backups on PostgreSQL (and SQLite).

With a channel listening to ``backup_overdue``, the beat runs ``announce_overdue`` once per
``beat_interval`` (30 s by default): it reads each database's latest success, applies the
overdue rule and claims new episodes. Measured here in process, on a real metadata DB
seeded like ``bench/many_backups.py`` (whose sparse histories, plus 100 databases
stopped a week ago, leave about half the databases overdue against a daily schedule),
against a local HTTP receiver:

- the first pass (claims every episode, queues one notice each), then 30 steady passes
  (p50, max), which find every episode announced already;
- baseline: the scheduler pass with nothing due (``run_pass``), which every beat makes on
  every whole minute and ``beat_interval`` anyway. Target: a steady overdue pass costs at
  most 2x that baseline.

    python bench/overdue_notices.py                # PostgreSQL and SQLite
    python bench/overdue_notices.py --db sqlite --rows 20000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from bench.many_backups import generate, seed  # noqa: E402
from shared.config import RuntimeSettings, parse_config  # noqa: E402
from shared.context import Context  # noqa: E402
from shared.metadata_db import MetadataDB  # noqa: E402
from shared.models import Database  # noqa: E402
from shared.notify import drain  # noqa: E402
from shared.storage import LocalStorage  # noqa: E402
from tests.receivers import HttpReceiver  # noqa: E402
from tests.services import PostgresCluster  # noqa: E402
from worker.beat.overdue import announce_overdue  # noqa: E402
from worker.beat.scheduler import run_pass  # noqa: E402

DATABASES = 1000
OVERDUE = 100
RATIO_TARGET = 2.0


def context(url: str, root: Path, hook: HttpReceiver) -> Context:
    runtime = RuntimeSettings(config_path="", data_dir=str(root), database_url=url,
                              broker_url="memory://")
    config = f"""
global: {{schedule: "0 2 * * *"}}
notifications:
  - {{type: webhook, url: "{hook.url}", events: [backup_overdue]}}
"""
    db = MetadataDB(url)
    db.migrate()
    return Context(settings=parse_config(config, runtime, {}), db=db,
                   storage=LocalStorage(str(root / "backups")))


def populate(ctx: Context, rows: int) -> list[str]:
    ids = [f"many-{i:04d}" for i in range(DATABASES)]
    registered = datetime.now(UTC) - timedelta(days=800)
    with ctx.db.sql_engine.begin() as conn:
        conn.execute(insert(Database.__table__), [
            {"id": i, "name": i, "engine": "postgres", "host": "db.internal", "port": 5432,
             "database_name": i, "options": None, "package": False, "enabled": True,
             "restore_target": False, "managed_by": "api", "created_at": registered,
             "updated_at": registered} for i in ids])
    backups = generate(ids, rows)
    # The last OVERDUE databases stopped a week ago: their newer backups never happened.
    late = set(ids[-OVERDUE:])
    cutoff = datetime.now(UTC) - timedelta(days=7)
    backups = [b for b in backups if b["database_id"] not in late or b["created_at"] < cutoff]
    seed(ctx.db.sql_engine, backups)
    return ids


def measure(kind: str, url: str, root: Path, rows: int) -> bool:
    with HttpReceiver() as hook:
        ctx = context(url, root, hook)
        populate(ctx, rows)
        now = datetime.now(UTC)
        started = time.perf_counter()
        first = announce_overdue(ctx, now)
        first_ms = (time.perf_counter() - started) * 1000
        steady, baseline = [], []
        for n in range(30):
            started = time.perf_counter()
            assert announce_overdue(ctx, now + timedelta(seconds=n + 1)) == []
            steady.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            run_pass(ctx, lambda *_: None, now=now.replace(hour=12, minute=0, second=n + 1))
            baseline.append((time.perf_counter() - started) * 1000)
        drain(60)
        received = len(hook.requests)
    ratio = statistics.median(steady) / statistics.median(baseline)
    print(f"{kind}: {DATABASES} databases, {rows} backups, {len(first)} overdue "
          f"({received} notices received)")
    print(f"  first pass {first_ms:.0f} ms; steady pass p50 {statistics.median(steady):.1f} ms, "
          f"max {max(steady):.1f} ms")
    print(f"  baseline run_pass (nothing due) p50 {statistics.median(baseline):.1f} ms; "
          f"ratio {ratio:.2f} (target <= {RATIO_TARGET})")
    return len(first) >= OVERDUE and received == len(first) and ratio <= RATIO_TARGET


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", choices=["postgresql", "sqlite", "both"], default="both")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-overdue-"))
    ok = True
    try:
        if args.db in ("sqlite", "both"):
            (root / "sqlite").mkdir()
            ok &= measure("sqlite", f"sqlite:///{root}/sqlite/meta.db", root / "sqlite",
                          args.rows)
        if args.db in ("postgresql", "both"):
            pg = PostgresCluster(Path(tempfile.mkdtemp(prefix="bench-overdue-pg-")))
            pg.start()
            try:
                pg.create_database("overdue_bench")
                (root / "pg").mkdir()
                ok &= measure("postgresql", pg.url("overdue_bench"), root / "pg", args.rows)
            finally:
                pg.stop()
                shutil.rmtree(pg.root, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
