"""Soak: the distributed roles back up every minute while a chaos loop breaks them.

Starts its own PostgreSQL clusters (one holds the databases backed up; the metadata DB
has one of its own, durable: fsync and synchronous commit on, so a crash loses nothing
it acknowledged), Redis (no persistence), ``backup-api api``, one ``backup-api beat``
and two ``backup-api worker``, and registers 20 databases on a ``* * * * *`` schedule.
Each dump goes through a proxy that slows it to a few seconds, so faults land on
running backups. Every 60-120 s the chaos loop injects one fault and repairs it 5-15 s
later:

- ``worker``: SIGKILL to a whole ``backup-api worker`` (as a container killed), started
  again;
- ``worker-crash``: SIGKILL to the Celery worker inside one (its supervisor restarts it);
- ``redis``: SIGKILL to Redis (its queue is lost), started again;
- ``metadata-db``: the metadata PostgreSQL crashes (``pg_ctl stop -m immediate``), started
  again.

Then it disables the schedules, waits for the last backups, and checks, printing each
check and the figures (exit status 1 if a check fails):

- every slot of every database, from its registration to the end, has exactly one
  backup row (lost: none);
- no backup is left pending or running;
- every failed backup has a reason;
- every completed backup's artifact matches its MD5 and SHA-256, and
  ``pg_restore --list`` reads it;
- ``backup_api_backups_total`` in ``/metrics`` equals the rows, per database and status.

    python bench/soak.py                      # 15 minutes, 20 databases
    python bench/soak.py --minutes 3          # a quick look
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.conftest import Stack, start_stack  # noqa: E402
from tests.faults.helpers import ThrottledProxy, celery_child  # noqa: E402
from tests.services import PG_BIN, PostgresCluster, Process, Redis, _as_postgres  # noqa: E402

CONFIG = """
global:
  schedule: "* * * * *"
  compression: gzip
  retention_days: 0     # keep everything: the checks read every artifact
  max_backups: 0
  max_parallel_jobs: 2
  beat_interval: 5
  heartbeat_timeout: 20
  max_attempts: 2
storage:
  type: local
"""
FAULTS = ("worker", "worker-crash", "redis", "metadata-db")
ROWS = 20_000  # per source database: a ~1.6 MB dump, ~3 s through the proxy
RATE = 512 * 1024


class DurableCluster(PostgresCluster):
    """A cluster that keeps what it acknowledged through a crash (unlike the test ones)."""

    def resume(self) -> None:
        subprocess.run(_as_postgres([
            str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "log"),
            "-w", "-t", "60", "start", "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c max_connections=200"]), check=True, capture_output=True)


@dataclass
class Soak:
    root: Path
    meta: DurableCluster
    source: PostgresCluster
    redis: Redis
    stack: Stack
    proxy: ThrottledProxy
    workers: list[Process] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)

    def sql(self, query: str) -> list[list[str]]:
        out = self.meta.psql(query, self.stack.env["DATABASE_URL"].rsplit("/", 1)[1])
        return [line.split("|", 10) for line in out.splitlines() if line]

    def start_worker(self, name: str) -> Process:
        worker = Process(name, ["worker", f"--hostname={name}@%h", "--grace-period=30"],
                         self.stack.env, self.root / f"{name}.log").start()
        self.workers = [w for w in self.workers if w.name != name] + [worker]
        return worker

    def inject(self, kind: str, rng: random.Random) -> None:
        downtime = rng.uniform(5, 15)
        event: dict[str, Any] = {"fault": kind, "at": datetime.now(UTC).isoformat(),
                                 "down_s": round(downtime, 1)}
        if kind == "worker":
            worker = rng.choice(self.workers)
            event["target"] = worker.name
            worker.stop(signal.SIGKILL)
            time.sleep(downtime)
            self.start_worker(worker.name)
        elif kind == "worker-crash":
            worker = rng.choice(self.workers)
            event["target"] = worker.name
            os.kill(celery_child(worker), signal.SIGKILL)  # its supervisor restarts it
            event["down_s"] = None
        elif kind == "redis":
            assert self.redis.process is not None
            self.redis.process.kill()
            self.redis.process.wait()
            time.sleep(downtime)
            self.redis.start()
        else:
            self.meta.stop()  # pg_ctl stop -m immediate: a crash
            time.sleep(downtime)
            self.meta.resume()
        self.faults.append(event)
        down = f", down {event['down_s']}s" if event["down_s"] else ""
        print(f"{event['at']}: {kind} {event.get('target', '')}{down}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--databases", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="backup-api-soak-"))
    os.chmod(root, 0o755)  # the clusters run as the postgres user
    soak = setup(root, args.databases)
    registered = datetime.now(UTC)
    print(f"soak: {args.databases} databases every minute for {args.minutes} min "
          f"(seed {seed}, logs in {root})", flush=True)
    try:
        deadline = time.monotonic() + args.minutes * 60
        while (pause := rng.uniform(60, 120)) < deadline - time.monotonic():
            time.sleep(pause)
            soak.inject(FAULTS[len(soak.faults) % len(FAULTS)] if len(soak.faults) < 4
                        else rng.choice(FAULTS), rng)
        time.sleep(max(0.0, deadline - time.monotonic()))
        ended = datetime.now(UTC)
        for db_id in [row[0] for row in soak.sql("SELECT id FROM databases")]:
            response = soak.stack.client.patch(f"/databases/{db_id}", json={"enabled": False})
            assert response.status_code == 200, response.text
        settled = wait_settled(soak, timeout=600)
        ok = report(soak, args, seed, registered, ended, settled)
    finally:
        teardown(soak)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if ok else 1)


def setup(root: Path, databases: int) -> Soak:
    source = PostgresCluster(root / "source-pg")
    source.start()
    meta = DurableCluster(root / "meta-pg")
    meta.start()
    redis = Redis(root / "redis")
    redis.start()
    names = [f"soak_{i:02d}" for i in range(databases)]
    for name in names:
        source.create_database(name)
        source.psql(f"CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v "
                    f"FROM generate_series(1, {ROWS}) g", name)
    stack = start_stack(root / "stack", meta, redis, config=CONFIG, workers=0)
    stack.workers.append(Process("beat", ["beat"], stack.env, root / "beat.log").start())
    proxy = ThrottledProxy(source.port, RATE).start()
    soak = Soak(root=root, meta=meta, source=source, redis=redis, stack=stack, proxy=proxy)
    for name in ("worker1", "worker2"):
        soak.start_worker(name)
    for name in names:
        stack.client.register_postgres(source, name, id=name.replace("_", "-"),
                                       port=proxy.port)
    return soak


def wait_settled(soak: Soak, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = soak.sql("SELECT count(*) FROM backups WHERE status IN ('pending','running')")
        if active[0][0] == "0":
            return True
        time.sleep(2)
    return False


def report(soak: Soak, args: argparse.Namespace, seed: int, registered: datetime,
           ended: datetime, settled: bool) -> bool:
    # The error last, its newlines flattened: psql's unaligned output is split on "|".
    rows = soak.sql("SELECT d.id, extract(epoch FROM d.created_at), b.id, b.status, "
                    "coalesce(extract(epoch FROM b.scheduled_for), 0), b.attempt, "
                    "coalesce(b.storage_key, ''), coalesce(b.checksum_md5, ''), "
                    "coalesce(b.checksum_sha256, ''), b.trigger, "
                    "replace(coalesce(b.error, ''), E'\\n', ' ') "
                    "FROM databases d JOIN backups b ON b.database_id = d.id")
    by_status = Counter(row[3] for row in rows)
    # Slots: every whole minute after the database was registered, up to the end.
    expected: set[tuple[str, float]] = set()
    for db_id, created in {(row[0], float(row[1])) for row in rows} | {
            (r[0], float(r[1])) for r in soak.sql(
                "SELECT id, extract(epoch FROM created_at) FROM databases")}:
        slot = (int(created) // 60 + 1) * 60
        while slot <= ended.timestamp() - 2:
            expected.add((db_id, float(slot)))
            slot += 60
    recorded = Counter((row[0], float(row[4])) for row in rows if row[9] == "schedule")
    lost = sorted(expected - set(recorded))
    doubled = [slot for slot, count in recorded.items() if count > 1]
    failed = [row for row in rows if row[3] == "failed"]
    reasons = Counter(_reason(row[10]) for row in failed)
    artifacts_ok, artifact_problems = check_artifacts(soak, [r for r in rows
                                                             if r[3] == "completed"])
    metrics_ok, metric_problems = check_metrics(soak, rows)
    checks = {
        "every slot has exactly one backup row": not lost and not doubled,
        "no backup left pending or running": settled and not (
            by_status["pending"] or by_status["running"]),
        "every failed backup has a reason": all(row[10].strip() for row in failed),
        "every completed artifact matches its checksums and pg_restore --list reads it":
            artifacts_ok,
        "backup_api_backups_total equals the rows": metrics_ok,
    }
    figures = {
        "minutes": args.minutes, "databases": args.databases, "seed": seed,
        "faults_injected": dict(Counter(f["fault"] for f in soak.faults)),
        "slots": len(expected), "rows": len(rows),
        "completed": by_status["completed"], "failed": by_status["failed"],
        "failed_by_reason": dict(reasons),
        "retried": sum(1 for row in rows if int(row[5]) > 1),
        "completed_on_attempt_2": sum(1 for row in rows
                                      if row[3] == "completed" and int(row[5]) > 1),
        "lost": len(lost), "doubled": len(doubled),
        "stuck": by_status["pending"] + by_status["running"],
    }
    print(json.dumps({"figures": figures, "faults": soak.faults,
                      "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                 f"Python {platform.python_version()}"}, indent=2))
    for problem in artifact_problems[:10] + metric_problems[:10]:
        print("problem:", problem)
    for slot in lost[:10]:
        print("lost slot:", slot[0], datetime.fromtimestamp(slot[1], UTC).isoformat())
    for name, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}")
    return all(checks.values())


def _reason(error: str) -> str:
    for marker in ("gave up after", "skipped the scheduled run", "could not enqueue",
                   "time limit", "could not connect"):
        if marker in error:
            return marker
    return error[:60]


def check_artifacts(soak: Soak, completed: list[list[str]]) -> tuple[bool, list[str]]:
    problems = []
    for row in completed:
        path = soak.stack.storage_dir / row[6]
        data = path.read_bytes() if path.exists() else b""
        if hashlib.md5(data).hexdigest() != row[7] or \
                hashlib.sha256(data).hexdigest() != row[8]:
            problems.append(f"{row[2]}: checksums differ from {path}")
            continue
        listed = subprocess.run([str(PG_BIN / "pg_restore"), "--list"],
                                input=gzip.decompress(data), capture_output=True)
        if listed.returncode != 0:
            problems.append(f"{row[2]}: pg_restore --list: {listed.stderr[:200]!r}")
    return not problems, problems


def check_metrics(soak: Soak, rows: list[list[str]]) -> tuple[bool, list[str]]:
    text = soak.stack.client.get("/metrics").text
    counted = {(s.labels["database_id"], s.labels["status"]): s.value
               for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "backup_api_backups_total"}
    finished = Counter((row[0], row[3]) for row in rows if row[3] in ("completed", "failed"))
    problems = [f"{key}: /metrics {counted.get(key, 0)} rows {finished.get(key, 0)}"
                for key in set(counted) | set(finished)
                if counted.get(key, 0) != finished.get(key, 0)]
    return not problems, problems


def teardown(soak: Soak) -> None:
    for process in [soak.stack.api, *soak.stack.workers, *soak.workers]:
        process.stop(timeout=60)
    soak.proxy.close()
    soak.redis.stop()
    soak.meta.stop()
    soak.source.stop()


if __name__ == "__main__":
    main()
