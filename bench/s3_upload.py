"""Benchmark: a >= 2 GB backup streamed into MinIO vs boto3's ``upload_file`` and vs staging.

Starts PostgreSQL, Redis, MinIO and two API + worker stacks itself (the test fixtures:
one storing in MinIO, one on local disk), fills a database whose uncompressed
custom-format dump is about ``--gb`` GB, then, per run:

- **backup**: ``POST /backups`` with ``compression: none`` and S3 storage; the worker
  streams ``pg_dump`` → MD5 + SHA-256 (their own threads) → our multipart writer (4
  parts in flight) → MinIO. Time from the POST to the row's ``finished_at``.
- **backup-local**: the same backup into local storage, for comparison.
- **staged** (the target's baseline): what peer tools do, ``pg_dump -Fc -Z0 > file``
  then ``upload_file`` of it in a fresh process.
- **upload_file** (the other baseline): a fresh process runs boto3's ``upload_file`` of
  the finished artifact (downloaded to a local file), default ``TransferConfig``.
- **writer**, **writer-raw**, **writer-copy**, **hashing**: our S3 writer alone in a
  fresh process fed the artifact from a file in 1 MiB chunks, with MD5 + SHA-256 as the
  pipeline does them / without them / with ``object_metadata: true`` (the server-side
  copy) / the hashes without the upload: where the time goes.

Reports throughput ratios (above 1 is faster) against the targets: backup ≥ 1.25 × staged
and ≥ 0.75 × upload_file; worker peak RSS (``VmHWM``) < 200 MB. Also the CPU seconds
of MinIO and of our side per step: on 2 cores they, not the network, set the pace.

    python bench/s3_upload.py --gb 2.1 --runs 3      # needs ~9 GB free under /tmp
"""

from __future__ import annotations

import argparse
import json
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

MiB = 1024 * 1024
TICK = os.sysconf("SC_CLK_TCK")

MODES = {
    "upload_file": "baseline: boto3 upload_file of the artifact (file on disk)",
    "staged": "baseline: pg_dump > file, then upload_file",
    "backup": "backup via API: pg_dump -> MD5+SHA-256 -> S3",
    "backup-local": "backup via API: pg_dump -> MD5+SHA-256 -> local storage",
    "writer-raw": "our S3 writer alone, file -> multipart",
    "writer": "our S3 writer, file -> MD5+SHA-256 -> multipart",
    "writer-copy": "our S3 writer + MD5+SHA-256 + metadata copy (object_metadata: true)",
    "hashing": "MD5+SHA-256 of the file only, no upload",
}
CHILD_MODES = ["upload_file", "writer", "writer-raw", "writer-copy", "hashing"]


def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system, with waited-for children) of ``pids`` so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])
    return total / TICK


def child(mode: str, path: str, endpoint: str, bucket: str, key: str) -> None:
    """Upload ``path`` one way in this fresh process; print seconds and peak RSS as JSON."""
    from shared.config import S3Settings
    from shared.hashing import Digests
    from shared.storage.s3 import S3Storage
    secret = os.environ["BENCH_S3_SECRET"]
    settings = S3Settings(bucket=bucket, endpoint_url=endpoint,
                          access_key=os.environ["BENCH_S3_USER"], secret_key=secret,
                          object_metadata=mode == "writer-copy")
    started = time.perf_counter()
    if mode.startswith("writer") or mode == "hashing":
        storage = S3Storage(settings)
        digests = Digests(background=True)
        with open(path, "rb") as source:
            if mode == "hashing":
                while chunk := source.read(MiB):
                    digests.update(chunk)
                digests.close()
            else:
                with storage.writer(key) as out:
                    while chunk := source.read(MiB):
                        if mode != "writer-raw":
                            digests.update(chunk)
                        out.write(chunk)
                    if mode != "writer-raw":
                        out.set_metadata({"checksum-md5": digests.md5,
                                          "checksum-sha256": digests.sha256})
    else:
        import boto3

        # The plainest baseline: boto3's defaults (its TransferConfig, its checksums).
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=settings.access_key,
                              aws_secret_access_key=secret)
        client.upload_file(path, bucket, key)
    print(json.dumps({"seconds": time.perf_counter() - started, "rss_mb": _vmhwm_mb(),
                      "cpu": time.process_time()}))


def run_child(mode: str, path: Path, endpoint: str, bucket: str, key: str) -> dict[str, Any]:
    from tests.minio import MINIO_PASSWORD, MINIO_USER

    env = {**os.environ, "BENCH_S3_USER": MINIO_USER, "BENCH_S3_SECRET": MINIO_PASSWORD,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path), endpoint,
                          bucket, key], env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def worker_pid(stack: Any) -> int:
    process = stack.workers[0].process
    assert process is not None
    return int(process.pid)


def timed_backup(stack: Any, db_id: str) -> tuple[float, float, dict[str, Any]]:
    """Run one backup; return seconds from the POST to ``finished_at``, the worker's
    CPU seconds, and the row. ``finished_at`` rather than the poll that saw it: the
    test client polls every 0.3 s."""
    from bench.pg_backup import process_tree

    pids = process_tree(worker_pid(stack))
    cpu = cpu_seconds(pids)
    posted = time.time()
    backup_id = stack.client.post("/backups", json={"database_id": db_id}).json()["id"]
    backup: dict[str, Any] = stack.client.wait_backup(backup_id, timeout=3600)
    assert backup["status"] == "completed", backup["error"]
    finished = datetime.fromisoformat(backup["finished_at"].replace("Z", "+00:00"))
    return finished.timestamp() - posted, cpu_seconds(pids) - cpu, backup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.1, help="approximate dump size in GB")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from bench.pg_backup import peak_rss_mb
    from tests.conftest import start_stack
    from tests.minio import MINIO_PASSWORD, MINIO_USER, MinioServer
    from tests.services import PG_BIN, PG_PASSWORD, PG_USER, PostgresCluster, Redis

    root = Path(tempfile.mkdtemp(prefix="backup-api-bench-s3-"))
    root.chmod(0o755)  # the cluster runs as the postgres user
    pg, redis, minio = PostgresCluster(root / "pg"), Redis(root / "redis"), None
    stacks: list[Any] = []
    try:
        pg.start()
        redis.start()
        minio = MinioServer(root / "minio").start()
        assert minio.process is not None
        bucket = minio.make_bucket("bench")
        s3 = minio.client()
        rows = int(args.gb * 1e9 / 1040)  # one 1 KiB text per row, plus framing
        pg.create_database("bench")
        pg.psql("CREATE TABLE blobs AS SELECT g AS id, repeat(md5(g::text), 32) AS body "
                f"FROM generate_series(1, {rows}) AS g", "bench")
        config = (f"global:\n  compression: none\nstorage:\n  type: s3\n  s3:\n"
                  f"    endpoint_url: \"{minio.endpoint}\"\n    access_key: \"{MINIO_USER}\"\n"
                  f"    secret_key: \"${{BENCH_S3_SECRET}}\"\n    bucket: \"{bucket}\"\n")
        os.environ["BENCH_S3_SECRET"] = MINIO_PASSWORD  # inherited by the stack, not in argv
        stack = start_stack(root / "stack", pg, redis, config=config)
        stacks.append(stack)
        local_stack = start_stack(root / "local", pg, redis,
                                  config="global:\n  compression: none\n")
        stacks.append(local_stack)
        db_id = stack.client.register_postgres(pg, "bench")
        local_db = local_stack.client.register_postgres(pg, "bench")
        local = root / "artifact.dump"
        times: dict[str, list[float]] = {name: [] for name in MODES}
        cpu: dict[str, list[float]] = {name: [] for name in MODES}
        minio_cpu: dict[str, list[float]] = {name: [] for name in MODES}
        rss: dict[str, float] = {name: 0.0 for name in MODES}
        size = 0

        def minio_seconds() -> float:
            assert minio is not None and minio.process is not None
            return cpu_seconds([minio.process.pid])

        for run in range(args.runs):
            os.sync()  # each step starts with no dirty pages left by the previous one
            before = minio_seconds()
            seconds, worker_cpu, backup = timed_backup(stack, db_id)
            times["backup"].append(seconds)
            cpu["backup"].append(worker_cpu)
            minio_cpu["backup"].append(minio_seconds() - before)
            size = backup["size_bytes"]
            if run == 0:
                s3.download_file(bucket, backup["storage_key"], str(local))
            stack.client.delete(f"/backups/{backup['id']}")

            os.sync()
            seconds, worker_cpu, backup = timed_backup(local_stack, local_db)
            times["backup-local"].append(seconds)
            cpu["backup-local"].append(worker_cpu)
            local_stack.client.delete(f"/backups/{backup['id']}")

            # Rotate the order so no mode always runs right after a 2 GB upload.
            shift = run % len(CHILD_MODES)
            for mode in CHILD_MODES[shift:] + CHILD_MODES[:shift]:
                os.sync()
                before = minio_seconds()
                result = run_child(mode, local, minio.endpoint, bucket, f"{mode}-{run}")
                minio_cpu[mode].append(minio_seconds() - before)
                times[mode].append(result["seconds"])
                cpu[mode].append(result["cpu"])
                rss[mode] = max(rss[mode], result["rss_mb"])
                if mode != "hashing":
                    s3.delete_object(Bucket=bucket, Key=f"{mode}-{run}")

            staged = root / "staged.dump"
            os.sync()
            before = minio_seconds()
            started = time.perf_counter()
            subprocess.run([str(PG_BIN / "pg_dump"), "-Fc", "-Z0", "-h", "127.0.0.1", "-p",
                            str(pg.port), "-U", PG_USER, "-f", str(staged), "bench"],
                           env={**os.environ, "PGPASSWORD": PG_PASSWORD}, check=True)
            result = run_child("upload_file", staged, minio.endpoint, bucket, "staged")
            times["staged"].append(time.perf_counter() - started)
            cpu["staged"].append(result["cpu"])  # the upload's; pg_dump's is not counted
            minio_cpu["staged"].append(minio_seconds() - before)
            s3.delete_object(Bucket=bucket, Key="staged")
            staged.unlink()
        worker_rss = peak_rss_mb(worker_pid(stack))
        local_rss = peak_rss_mb(worker_pid(local_stack))
        report(args, size, times, cpu, minio_cpu, rss, worker_rss, local_rss)
    finally:
        for running in stacks:
            for process in [running.api, *running.workers]:
                process.stop()
        if minio:
            minio.stop()
        redis.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def report(args: argparse.Namespace, size: int, times: dict[str, list[float]],
           cpu: dict[str, list[float]], minio_cpu: dict[str, list[float]],
           rss: dict[str, float], worker_rss: float, local_rss: float) -> None:
    median = {name: statistics.median(values) for name, values in times.items()}
    speed = {name: size / 1e6 / seconds for name, seconds in median.items()}
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; machine: {platform.machine()}, "
          f"{os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}; load average {os.getloadavg()[0]:.1f}; "
          f"runs: {args.runs}")
    print(f"artifact: {size / 1e9:.2f} GB (pg_dump -Fc, compression none)")
    for name, label in MODES.items():
        ratio = speed[name] / speed["upload_file"]
        ours = f", our CPU {statistics.median(cpu[name]):.1f}s" if cpu[name] else ""
        server = (f", MinIO CPU {statistics.median(minio_cpu[name]):.1f}s"
                  if minio_cpu[name] else "")
        print(f"{label}: median {median[name]:.1f}s {[round(t, 1) for t in times[name]]}, "
              f"{speed[name]:.0f} MB/s, vs upload_file {ratio:.2f}{ours}{server}")
    vs_staged = speed["backup"] / speed["staged"]
    vs_upload = speed["backup"] / speed["upload_file"]
    print(f"TARGET backup vs staged: {vs_staged:.2f}x throughput (target >= 1.25): "
          f"{'met' if vs_staged >= 1.25 else 'NOT met'}")
    print(f"TARGET backup vs upload_file: {vs_upload:.2f} (target >= 0.75): "
          f"{'met' if vs_upload >= 0.75 else 'NOT met'}")
    print(f"TARGET worker peak RSS (S3): {worker_rss:.0f} MB (target < 200 MB): "
          f"{'met' if worker_rss < 200 else 'NOT met'}; local-storage worker "
          f"{local_rss:.0f} MB; writer process {rss['writer']:.0f} MB; upload_file process "
          f"{rss['upload_file']:.0f} MB; hashing only {rss['hashing']:.0f} MB")


if __name__ == "__main__":
    main()
