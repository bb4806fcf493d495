"""Benchmark: 1,000 databases due in the same minute, two beats and two workers.

Starts its own PostgreSQL cluster (metadata DB and the databases backed up) and Redis,
then the distributed roles as a user runs them: ``backup-api api``, two
``backup-api beat`` and two ``backup-api worker`` (``max_parallel_jobs`` each). It
registers 1,000 databases through the API, every one with the same daily cron minute,
pointing round-robin at a handful of tiny real databases (a 1,000-row table each), and
waits for that minute. Reported against the targets:

- the scheduler's pass time, from each beat's "scheduler pass" log line;
- slot → last backup recorded (``created_at``) and slot → end of the pass that
  enqueued it (target: every backup enqueued within 10 s of the slot);
- exactly once: 1,000 backups for the slot, one per database, no skipped slot;
- ``max_parallel_jobs`` kept: ``pg_dump`` processes per worker, sampled every 0.1 s;
- the time until all 1,000 are completed.

    python bench/many_databases.py                      # 1,000 databases, 10 sources
    python bench/many_databases.py --databases 200      # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from shared.metadata_db import make_engine  # noqa: E402
from tests.conftest import Client, Stack, start_stack  # noqa: E402
from tests.services import PostgresCluster, Process, Redis  # noqa: E402

ENQUEUE_TARGET = 10.0  # seconds from the slot to the last enqueue
CONFIG = """
global:
  schedule: "0 2 * * *"
  compression: gzip
  retention_days: 14
  max_backups: 10
  max_parallel_jobs: {parallel}
storage:
  type: local
"""
PASS_LINE = re.compile(r"scheduler pass: (\d+) jobs, (\d+) due, (\d+) fired by this beat "
                       r"in ([\d.]+)s")


@dataclass
class Sampler:
    """Every 0.1 s, count the ``pg_dump`` processes under each worker process and the
    backups the metadata DB has ``running`` (both workers: their rows carry the same
    host name)."""

    workers: dict[str, int]
    meta: Engine
    samples: dict[str, list[int]] = field(default_factory=dict)
    running: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        count = text("SELECT count(*) FROM backups WHERE status = 'running'")
        while not self.stop.is_set():
            with self.meta.connect() as conn:
                self.running.append(conn.scalar(count) or 0)
            parents, dumps = self._processes()
            counts: Counter[int] = Counter()
            for pid in dumps:
                while pid > 1 and pid not in self.workers.values():
                    pid = parents.get(pid, 0)
                counts[pid] += 1
            for name, worker in self.workers.items():
                self.samples.setdefault(name, []).append(counts[worker])
            time.sleep(0.1)

    @staticmethod
    def _processes() -> tuple[dict[int, int], list[int]]:
        """Return every process's parent, and the pids of the ``pg_dump`` processes."""
        parents, dumps = {}, []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
            parents[int(entry)] = int(rest.split()[1])
            if name == "pg_dump":
                dumps.append(int(entry))
        return parents, dumps


def register_all(stack: Stack, pg: PostgresCluster, sources: list[str], count: int,
                 cron: str) -> float:
    """Register ``count`` databases through the API, four requests at a time; return seconds."""
    started = time.perf_counter()

    def register(index: int) -> None:
        client = Client(stack.client.base)
        client.register_postgres(pg, sources[index % len(sources)], id=f"many-{index:04d}",
                                 schedule=cron)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(register, range(count)))
    return time.perf_counter() - started


def pass_lines(logs: list[Process], since: datetime) -> list[tuple[str, datetime, list[str]]]:
    """Return each beat's "scheduler pass" lines logged in the minute from ``since``."""
    found = []
    for beat in logs:
        for line in beat.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            match = PASS_LINE.search(record.get("message", ""))
            at = datetime.fromisoformat(record.get("time", "1970-01-01T00:00:00+00:00"))
            if match and since <= at < since + timedelta(minutes=1):
                found.append((beat.name, at, list(match.groups())))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--databases", type=int, default=1000)
    parser.add_argument("--sources", type=int, default=10, help="tiny real databases behind them")
    parser.add_argument("--parallel", type=int, default=4, help="global.max_parallel_jobs")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="backup-api-many-dbs-"))
    root.chmod(0o755)  # the cluster runs as the postgres user
    pg, redis = PostgresCluster(root / "pg"), Redis(root / "redis")
    pg.start()
    redis.start()
    stack = None
    try:
        sources = [f"src{i:02d}" for i in range(args.sources)]
        for name in sources:
            pg.create_database(name)
            pg.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v "
                    "FROM generate_series(1, 1000) g", name)
        stack = start_stack(root / "stack", pg, redis, workers=0,
                            config=CONFIG.format(parallel=args.parallel))
        workers = [Process(name, ["worker", f"--hostname={name}@%h"], stack.env,
                           stack.root / f"{name}.log").start() for name in ("worker1", "worker2")]
        beats = [Process(name, ["beat"], stack.env, stack.root / f"{name}.log").start()
                 for name in ("beat1", "beat2")]
        stack.workers.extend(workers + beats)

        # The slot: the first whole minute after the registrations (about 30/s) and 20 s.
        lead = timedelta(seconds=args.databases / 30 + 20)
        slot = (datetime.now(UTC) + lead + timedelta(minutes=1)).replace(second=0,
                                                                         microsecond=0)
        took = register_all(stack, pg, sources, args.databases, f"{slot.minute} {slot.hour} * * *")
        print(f"registered {args.databases} databases through the API in {took:.1f}s "
              f"({args.databases / took:.0f}/s); all due at {slot:%H:%M} UTC")
        if datetime.now(UTC) > slot - timedelta(seconds=5):
            sys.exit("registration ran past the slot; run again on a quieter machine")

        meta = make_engine(stack.env["DATABASE_URL"])
        sampler = Sampler({w.name: w.process.pid for w in workers if w.process}, meta)
        while datetime.now(UTC) < slot - timedelta(seconds=2):
            time.sleep(0.5)
        threading.Thread(target=sampler.run, daemon=True).start()
        query = text("SELECT status, count(*), count(DISTINCT database_id), min(created_at), "
                     "max(created_at), max(finished_at) FROM backups "
                     "WHERE scheduled_for = :slot GROUP BY status")
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            with meta.connect() as conn:
                rows = {r[0]: r for r in conn.execute(query, {"slot": slot})}
            if sum(r[1] for s, r in rows.items() if s not in ("pending", "running")) \
                    >= args.databases:
                break
            time.sleep(1)
        sampler.stop.set()
        report(args, slot, rows, pass_lines(beats, slot), sampler, stack, took)
    finally:
        if stack:
            for process in [stack.api, *stack.workers]:
                process.stop()
        redis.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def report(args: argparse.Namespace, slot: datetime, rows: dict[str, tuple], passes: list,
           sampler: Sampler, stack: Stack, registration: float) -> None:
    total = sum(r[1] for r in rows.values())
    distinct = sum(r[2] for r in rows.values())  # statuses partition the rows
    first = min(r[3] for r in rows.values())
    last = max(r[4] for r in rows.values())
    finished = max((r[5] for r in rows.values() if r[5] is not None), default=None)
    fired_lines = len(re.findall(rf"backup:many-\d+: fired for slot {re.escape(slot.isoformat())}",
                                 stack.logs()))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}; "
          f"2 beats, 2 workers × max_parallel_jobs {args.parallel}, PostgreSQL + Redis; "
          "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"backups for the slot: {total} (target {args.databases}), databases "
          f"{distinct}, by status {({s: r[1] for s, r in sorted(rows.items())})}")
    once = total == distinct == args.databases == fired_lines
    print(f"exactly once (one backup per database for the slot, none skipped): "
          f"{'met' if once else 'MISSED'} ({fired_lines} 'fired for slot' log lines across "
          f"both beats)")
    met = once
    for name, at, (jobs, due, fired, seconds) in sorted(passes, key=lambda p: p[1]):
        print(f"  {name} pass at slot +{(at - slot).total_seconds():.2f}s: {jobs} jobs, "
              f"{due} due, {fired} fired by it, pass time {float(seconds):.2f}s")
    enqueued = max((at for _, at, _ in passes), default=None)
    print(f"slot → first backup recorded: {(first - slot).total_seconds():.2f}s; → last "
          f"recorded: {(last - slot).total_seconds():.2f}s")
    if enqueued is not None:
        late = (enqueued - slot).total_seconds()
        print(f"slot → last enqueue (end of the last pass): {late:.2f}s "
              f"(target <= {ENQUEUE_TARGET:.0f}s): {'met' if late <= ENQUEUE_TARGET else 'MISSED'}")
        met &= late <= ENQUEUE_TARGET
    else:
        met = False
    for name, counts in sampler.samples.items():
        kept = max(counts, default=0) <= args.parallel
        met &= kept
        print(f"  {name}: pg_dump processes at once: max {max(counts, default=0)} "
              f"(target <= max_parallel_jobs {args.parallel}) over {len(counts)} samples: "
              f"{'met' if kept else 'MISSED'}")
    busy = [n for n in sampler.running if n]
    print(f"  backups running (both workers): max {max(sampler.running, default=0)} "
          f"(target <= {2 * args.parallel}), mean {sum(busy) / max(len(busy), 1):.1f} "
          f"while any ran")
    if finished is not None:
        span = (finished - slot).total_seconds()
        print(f"slot → all {total} finished: {span:.1f}s ({total / span:.1f} backups/s "
              f"with 2 workers); registration took {registration:.1f}s")
    print(f"all targets met: {'yes' if met else 'NO'}")


if __name__ == "__main__":
    main()
