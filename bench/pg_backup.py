"""Benchmark: a PostgreSQL backup through the API vs the shell baseline, side by side.

Baseline: ``pg_dump -Fc -Z0 | gzip > file; md5sum file`` on the same database.
Ours: POST /backups, wait for ``completed`` (dump → gzip → MD5 + SHA-256 → local storage).
Reports the median wall times, their ratio (target <= 1.10) and the worker's peak RSS
(target < 200 MB, whatever the database size).

    python bench/pg_backup.py --scale 70 --runs 3     # pgbench scale 70 is about 1 GB
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import start_stack  # noqa: E402
from tests.services import PG_BIN, PG_PASSWORD, PG_USER, PostgresCluster, Redis  # noqa: E402


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and its descendants (the supervised Celery worker, its prefork
    children): ``backup-api worker`` starts Celery in a process group of its own."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def peak_rss_mb(pid: int) -> float:
    """Return the largest VmHWM (peak resident set) among ``pid`` and its descendants."""
    peak = 0
    for child in process_tree(pid):
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def baseline(pg: PostgresCluster, database: str, out: Path) -> float:
    env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
    started = time.perf_counter()
    subprocess.run(
        f"{PG_BIN}/pg_dump -Fc -Z0 -h 127.0.0.1 -p {pg.port} -U {PG_USER} {database}"
        f" | gzip > {out}; md5sum {out} > /dev/null", shell=True, check=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70 ≈ 1 GB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dataset", choices=["pgbench", "random"], default="pgbench",
                        help="random: md5 text rows, far less compressible than pgbench's")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="backup-api-bench-"))
    root.chmod(0o755)  # the cluster runs as the postgres user
    pg = PostgresCluster(root / "pg")
    redis = Redis(root / "redis")
    pg.start()
    redis.start()
    stack = None
    try:
        pg.create_database("bench")
        if args.dataset == "pgbench":
            subprocess.run([str(PG_BIN / "pgbench"), "-i", "-q", "-s", str(args.scale),
                            "-h", "127.0.0.1", "-p", str(pg.port), "-U", PG_USER, "bench"],
                           env={**os.environ, "PGPASSWORD": PG_PASSWORD}, check=True,
                           capture_output=True)
        else:
            # About 14 MB of rows per unit of scale, mostly random hex text.
            pg.psql("CREATE TABLE noise AS SELECT g AS id, md5(random()::text) AS a, "
                    "md5(random()::text) || md5(random()::text) AS b, now() AS at "
                    f"FROM generate_series(1, {args.scale * 100000}) AS g", "bench")
        size = pg.psql("SELECT pg_size_pretty(pg_database_size('bench'))")
        stack = start_stack(root / "stack", pg, redis)
        client = stack.client
        db_id = client.register_postgres(pg, "bench", compression="gzip")
        ours, base, sizes = [], [], []
        for _ in range(args.runs):
            base.append(baseline(pg, "bench", root / "baseline.dump.gz"))
            started = time.perf_counter()
            backup_id = client.post("/backups", json={"database_id": db_id}).json()["id"]
            backup = client.wait_backup(backup_id, timeout=3600)
            ours.append(time.perf_counter() - started)
            assert backup["status"] == "completed", backup["error"]
            sizes.append(backup["size_bytes"])
            client.delete(f"/backups/{backup_id}")
        worker = stack.workers[0].process
        assert worker is not None
        rss = peak_rss_mb(worker.pid)
        ratio = statistics.median(ours) / statistics.median(base)
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
              f"{platform.python_implementation()} {platform.python_version()}")
        base_size = os.path.getsize(root / "baseline.dump.gz")
        print(f"database: {args.dataset} scale {args.scale}, {size}; gzip artifact "
              f"{sizes[-1] / 1e6:.0f} MB (baseline {base_size / 1e6:.0f} MB)")
        print(f"baseline pg_dump -Fc -Z0 | gzip; md5sum: median {statistics.median(base):.2f}s "
              f"{[round(t, 2) for t in base]}")
        print(f"backup-api (API → worker → gzip + MD5 + SHA-256 → local): median "
              f"{statistics.median(ours):.2f}s {[round(t, 2) for t in ours]}")
        print(f"ratio ours/baseline: {ratio:.3f} (target <= 1.10)")
        print(f"worker peak RSS (largest process): {rss:.0f} MB (target < 200 MB)")
    finally:
        if stack:
            for process in [stack.api, *stack.workers]:
                process.stop()
        redis.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
