"""Benchmark: an age-encrypted backup against the same backup unencrypted, side by side.

Baseline: the same database backed up through the API without encryption.
Ours: the same backup with ``encryption: {type: age, recipients: [...]}``
(dump → compress → age encrypt → MD5 + SHA-256 → local storage), then a verify of each
(storage → hash → age decrypt → decompress → pg_restore's full read) with the key in
``identity_file``. Reports median wall times, throughput, the worker's CPU time (robust on a shared
machine), the encrypted/plain ratios and the worker's peak RSS (a fresh worker per run,
the two kinds alternating; target < 200 MB).

    python bench/encrypted_backup.py --gb 2 --runs 3              # a 2 GB backup
    python bench/encrypted_backup.py --gb 0.5 --runs 3 --compression gzip
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.age import make_key  # noqa: E402
from tests.conftest import Client, Stack, start_stack  # noqa: E402
from tests.services import PostgresCluster, Redis  # noqa: E402

# Bytes of one row of the table below in a custom-format dump (measured: 1.66 GB for
# 11.8 million rows).
ROW_BYTES = 141

FIGURES = ("backup", "verify", "backup_cpu", "verify_cpu")

CONFIG = """
global:
  max_parallel_jobs: 1
  backup_time_limit: 7200
  encryption:
    type: none            # nothing is encrypted unless a database asks (the one below)
    identity_file: "@KEY@"  # what verify decrypts with
storage:
  type: local
"""


def timed_backup(client: Client, db_id: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    backup_id = client.post("/backups", json={"database_id": db_id}).json()["id"]
    backup = client.wait_backup(backup_id, timeout=7200)
    elapsed = time.perf_counter() - started
    assert backup["status"] == "completed", backup["error"]
    return elapsed, backup


def timed_verify(client: Client, backup_id: str) -> float:
    started = time.perf_counter()
    restore_id = client.post(f"/backups/{backup_id}/verify").json()["id"]
    result = client.wait_done(f"/restores/{restore_id}", timeout=7200)
    assert result["status"] == "completed", result["error"]
    return time.perf_counter() - started


def _stats() -> dict[int, list[str]]:
    """Return the fields of /proc/<pid>/stat after the command name, by pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            found[int(entry)] = text.rsplit(")", 1)[1].split()
    return found


def tree(pid: int) -> list[int]:
    """Return ``pid`` and its live descendants (the worker runs in a session of its own,
    under its supervisor, so a process group does not find it)."""
    stats = _stats()
    members, queue = [], [pid]
    while queue:
        current = queue.pop()
        members.append(current)
        queue += [child for child, fields in stats.items() if int(fields[1]) == current]
    return members


def tree_cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system, reaped children included) of ``pid``'s tree.

    CPU time, unlike wall time, hardly moves when other jobs share the machine.
    """
    stats = _stats()
    ticks = sum(int(value) for member in tree(pid) if member in stats
                for value in stats[member][11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_peak_rss_mb(pid: int) -> float:
    """Return the largest VmHWM (peak resident set) in ``pid``'s tree."""
    peak = 0
    for member in tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except OSError:
            continue
    return peak / 1024


def one_run(stack: Stack, db_id: str, name: str, figures: dict[str, Any]) -> None:
    """Back up and verify ``db_id`` once on a fresh worker; add the figures."""
    for worker in stack.workers:
        worker.stop()
    stack.workers.clear()
    worker = stack.start_worker(f"bench-{name}")
    assert worker.process is not None
    time.sleep(3)  # let the worker connect before the first job is timed
    os.sync()
    cpu = tree_cpu_seconds(worker.process.pid)
    elapsed, backup = timed_backup(stack.client, db_id)
    backup_cpu = tree_cpu_seconds(worker.process.pid) - cpu
    verify = timed_verify(stack.client, backup["id"])
    verify_cpu = tree_cpu_seconds(worker.process.pid) - cpu - backup_cpu
    sidecar = stack.storage_dir / f"{backup['storage_key']}.json"
    figures["raw"] = int(json.loads(sidecar.read_text())["uncompressed_bytes"])
    figures["size"] = backup["size_bytes"]
    figures["backup"].append(elapsed)
    figures["verify"].append(verify)
    figures["backup_cpu"].append(backup_cpu)
    figures["verify_cpu"].append(verify_cpu)
    figures["rss"] = max(figures["rss"], tree_peak_rss_mb(worker.process.pid))
    stack.client.delete(f"/backups/{backup['id']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.0, help="size of the dump (GB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compression", choices=["none", "gzip", "zstd"], default="none",
                        help="none: the encryptor sees every byte of the dump (worst case)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="backup-api-bench-"))
    root.chmod(0o755)  # the cluster runs as the postgres user
    pg = PostgresCluster(root / "pg")
    redis = Redis(root / "redis")
    pg.start()
    redis.start()
    stack = None
    try:
        key = make_key(root / "bench-key.txt")
        pg.create_database("bench")
        rows = int(args.gb * 1e9 / ROW_BYTES)
        pg.psql("CREATE TABLE noise AS SELECT g AS id, md5(random()::text) AS a, "
                "md5(random()::text) || md5(random()::text) AS b, now() AS at "
                f"FROM generate_series(1, {rows}) AS g", "bench")
        size = pg.psql("SELECT pg_size_pretty(pg_database_size('bench'))")
        stack = start_stack(root / "stack", pg, redis,
                            config=CONFIG.replace("@KEY@", str(key.path)))
        client = stack.client
        plain_id = client.register_postgres(pg, "bench", compression=args.compression)
        sealed_id = client.register_postgres(pg, "bench", compression=args.compression,
                                             encryption={"type": "age",
                                                         "recipients": [key.recipient]})
        plain: dict[str, Any] = {key: [] for key in FIGURES}
        sealed: dict[str, Any] = {key: [] for key in FIGURES}
        plain["rss"] = sealed["rss"] = 0.0
        for run in range(args.runs):
            # Alternate the order, so neither kind always runs on a warmer cache.
            order = [("plain", plain_id, plain), ("age", sealed_id, sealed)]
            for name, db_id, figures in order if run % 2 == 0 else order[::-1]:
                one_run(stack, db_id, name, figures)
        report(args, size, plain, sealed)
    finally:
        if stack:
            for process in [stack.api, *stack.workers]:
                process.stop()
        redis.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def report(args: argparse.Namespace, size: str, plain: dict[str, Any],
           sealed: dict[str, Any]) -> None:
    def line(name: str, figures: dict[str, Any], what: str) -> str:
        median = statistics.median(figures[what])
        return (f"  {name:<10} median {median:7.2f}s  {figures['raw'] / median / 1e6:6.1f} MB/s "
                f"of dump  {[round(t, 2) for t in figures[what]]}")

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}")
    print(f"database: random md5 text, {size}; dump {plain['raw'] / 1e9:.2f} GB, "
          f"compression {args.compression}; artifact plain {plain['size'] / 1e9:.3f} GB, "
          f"age {sealed['size'] / 1e9:.3f} GB")
    for what in ("backup", "verify"):
        ratio = statistics.median(sealed[what]) / statistics.median(plain[what])
        cpu_plain = statistics.median(plain[f"{what}_cpu"])
        cpu_age = statistics.median(sealed[f"{what}_cpu"])
        print(f"{what} (median of {args.runs}):")
        print(line("plain", plain, what))
        print(line("age", sealed, what))
        print(f"  time ratio age/plain: {ratio:.3f}")
        print(f"  worker CPU (its processes and their tools): plain {cpu_plain:.1f}s, age "
              f"{cpu_age:.1f}s, +{(cpu_age - cpu_plain) / (sealed['raw'] / 1e9):.2f} s per GB "
              f"(ratio {cpu_age / cpu_plain:.3f})")
    print(f"worker peak RSS: plain {plain['rss']:.0f} MB, age {sealed['rss']:.0f} MB "
          "(target < 200 MB)")


if __name__ == "__main__":
    main()
