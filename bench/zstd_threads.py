"""Benchmark: a zstd backup with worker threads vs the shell's ``zstd -T0``, side by side.

Starts a throwaway PostgreSQL cluster and Redis, fills a pgbench database (scale 30 is
about 450 MB), and starts two API + worker stacks on local storage with
``compression: zstd`` and ``zstd_level: 3``: one with ``zstd_threads: -1`` (one thread
per core), one with ``zstd_threads: 0`` (compression in the backup's own thread, the
default). Per run, in rotating order:

- **raw**: ``pg_dump -Fc -Z0 > /dev/null``: reading the dump, nothing else.
- **shell**: ``pg_dump -Fc -Z0 | zstd -T0 -3 -q > file`` (the target's baseline).
- **threads** / **single**: ``POST /backups``, time to the row's ``finished_at``: the
  worker streams pg_dump → zstd → MD5 + SHA-256 → local storage (fsync, rename).

Targets: threads ≤ 1.10 × shell and ≤ 1.5 × raw; worker peak RSS < 200 MB. The last
artifact is checked with ``zstd -lv`` (one frame, XXH64 checksum) and ``zstd -t``.

    python bench/zstd_threads.py --scale 30 --runs 5
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
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pg_backup import peak_rss_mb  # noqa: E402
from tests.conftest import Stack, start_stack  # noqa: E402
from tests.services import PG_BIN, PG_PASSWORD, PG_USER, PostgresCluster, Redis  # noqa: E402

CONFIG = "global:\n  compression: zstd\n  zstd_level: {level}\n  zstd_threads: {threads}\n"


def shell(pg: PostgresCluster, command: str) -> float:
    env = {**os.environ, "PGPASSWORD": PG_PASSWORD}
    dump = f"{PG_BIN}/pg_dump -Fc -Z0 -h 127.0.0.1 -p {pg.port} -U {PG_USER} bench"
    started = time.perf_counter()
    subprocess.run(f"set -o pipefail; {dump} {command}", shell=True, check=True, env=env,
                   executable="/bin/bash")
    return time.perf_counter() - started


def backup(stack: Stack, db_id: str) -> tuple[float, dict[str, Any]]:
    """Run one backup; return the seconds from the POST to ``finished_at`` (not to the
    poll that saw it: the test client polls every 0.3 s) and the row, with
    ``queued_seconds`` (POST to ``started_at``) added."""
    posted = time.time()
    backup_id = stack.client.post("/backups", json={"database_id": db_id}).json()["id"]
    row = stack.client.wait_backup(backup_id, timeout=3600)
    assert row["status"] == "completed", row["error"]
    started = datetime.fromisoformat(row["started_at"].replace("Z", "+00:00"))
    finished = datetime.fromisoformat(row["finished_at"].replace("Z", "+00:00"))
    row["queued_seconds"] = started.timestamp() - posted
    return finished.timestamp() - posted, row


def worker_pid(stack: Stack) -> int:
    process = stack.workers[0].process
    assert process is not None
    return process.pid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=int, default=30, help="pgbench scale (30 ≈ 450 MB)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--level", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="backup-api-bench-zstd-"))
    root.chmod(0o755)  # the cluster runs as the postgres user
    pg, redis = PostgresCluster(root / "pg"), Redis(root / "redis")
    stacks: dict[str, Stack] = {}
    try:
        pg.start()
        redis.start()
        pg.create_database("bench")
        subprocess.run([str(PG_BIN / "pgbench"), "-i", "-q", "-s", str(args.scale),
                        "-h", "127.0.0.1", "-p", str(pg.port), "-U", PG_USER, "bench"],
                       env={**os.environ, "PGPASSWORD": PG_PASSWORD}, check=True,
                       capture_output=True)
        size = pg.psql("SELECT pg_size_pretty(pg_database_size('bench'))")
        for name, threads in (("threads", -1), ("single", 0)):
            stacks[name] = start_stack(root / name, pg, redis,
                                       config=CONFIG.format(level=args.level, threads=threads))
        ids = {name: stack.client.register_postgres(pg, "bench", compression="zstd")
               for name, stack in stacks.items()}
        out = root / "shell.dump.zst"
        steps = {
            "raw": lambda: shell(pg, "> /dev/null"),
            "shell": lambda: shell(pg, f"| zstd -T0 -{args.level} -q > {out}"),
            "threads": lambda: _ours(stacks["threads"], ids["threads"], last, "threads"),
            "single": lambda: _ours(stacks["single"], ids["single"], last, "single"),
        }
        last: dict[str, dict[str, Any]] = {}
        times: dict[str, list[float]] = {name: [] for name in steps}
        order = list(steps)
        for run in range(args.runs):
            for name in order[run % 4:] + order[:run % 4]:
                os.sync()
                times[name].append(steps[name]())
        report(args, size, times, last["threads"], out,
               stacks["threads"].storage_dir / last["threads"]["storage_key"], stacks)
    finally:
        for stack in stacks.values():
            for process in [stack.api, *stack.workers]:
                process.stop()
        redis.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


QUEUED: dict[str, list[float]] = {"threads": [], "single": []}


def _ours(stack: Stack, db_id: str, last: dict[str, dict[str, Any]], name: str) -> float:
    seconds, row = backup(stack, db_id)
    QUEUED[name].append(row["queued_seconds"])
    if name in last:  # keep the last artifact only, for the frame check
        stack.client.delete(f"/backups/{last[name]['id']}")
    last[name] = row
    return seconds


def _run_ratio(times: dict[str, list[float]], ours: str, base: str) -> float:
    return statistics.median(a / b for a, b in zip(times[ours], times[base], strict=True))


def report(args: argparse.Namespace, size: str, times: dict[str, list[float]],
           row: dict[str, Any], shell_out: Path, artifact: Path,
           stacks: dict[str, Stack]) -> None:
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; machine: {platform.machine()}, "
          f"{os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f}; "
          f"runs: {args.runs}")
    print(f"database: pgbench scale {args.scale}, {size}; zstd -{args.level} artifact "
          f"{row['size_bytes'] / 1e6:.1f} MB (shell {shell_out.stat().st_size / 1e6:.1f} MB)")
    labels = {"raw": "pg_dump -Fc -Z0 > /dev/null", "shell": "pg_dump -Fc -Z0 | zstd -T0",
              "threads": "backup via API, zstd_threads: -1",
              "single": "backup via API, zstd_threads: 0"}
    for name, label in labels.items():
        print(f"{label}: median {median[name]:.2f}s {[round(t, 2) for t in times[name]]}")
    for name in QUEUED:
        print(f"  {name}: POST to started_at median {statistics.median(QUEUED[name]):.2f}s")
    # Each run has the four steps back to back: the median of the runs' own ratios is
    # steadier than the ratio of medians on a machine whose load changes.
    vs_shell = _run_ratio(times, "threads", "shell")
    vs_raw = _run_ratio(times, "threads", "raw")
    print(f"ratio of medians: threads/shell {median['threads'] / median['shell']:.2f}, "
          f"threads/raw {median['threads'] / median['raw']:.2f}; below, median of the "
          "runs' ratios")
    print(f"TARGET threads vs shell: {vs_shell:.2f}x the time (target <= 1.10): "
          f"{'met' if vs_shell <= 1.10 else 'NOT met'}")
    print(f"TARGET threads vs raw read: {vs_raw:.2f}x the time (target <= 1.5): "
          f"{'met' if vs_raw <= 1.5 else 'NOT met'}")
    single = _run_ratio(times, "single", "shell")
    print(f"single-threaded zstd vs shell: {single:.2f}x")
    for name, stack in stacks.items():
        print(f"worker peak RSS ({name}): {peak_rss_mb(worker_pid(stack)):.0f} MB "
              f"(target < 200 MB)")
    if artifact.exists():
        listing = subprocess.run(["zstd", "-lv", str(artifact)], capture_output=True,
                                 text=True).stdout
        frames = next((line for line in listing.splitlines() if "# Zstandard Frames" in line),
                      "").strip()
        check = next((line for line in listing.splitlines() if "Check:" in line), "").strip()
        test = subprocess.run(["zstd", "-tq", str(artifact)]).returncode
        print(f"artifact of zstd_threads -1: {frames}; {check}; zstd -t exit {test}")


if __name__ == "__main__":
    main()
