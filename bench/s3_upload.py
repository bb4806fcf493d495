"""Benchmark: a >= 2 GB backup streamed into MinIO vs a plain boto3 ``upload_file``.

Starts PostgreSQL, Redis, MinIO and our API + worker itself (the test fixtures), fills a
database whose uncompressed custom-format dump is about ``--gb`` GB, then, per run:

- **backup**: ``POST /backups`` with ``compression: none`` and S3 storage; the worker
  streams ``pg_dump`` → MD5 + SHA-256 → our multipart writer → MinIO. Wall time from
  the POST to ``completed``.
- **writer**: our S3 writer alone in a fresh process, fed the same bytes from a file in
  1 MiB chunks with MD5 + SHA-256, as the pipeline does, then the checksums set as
  object metadata (a server-side copy); **writer-nocopy** with ``object_metadata:
  false``, **writer-raw** without hashing or metadata, and **hashing** without the
  upload, to show where the time goes.
- **upload_file** (the baseline): a fresh process runs boto3's ``upload_file`` of the
  same bytes (the artifact downloaded to a local file), default ``TransferConfig``.
- **staged**: what peer tools do — ``pg_dump > file`` then ``upload_file``.

Reports throughput ratios against ``upload_file`` (above 1 is faster), and the peak RSS
(``VmHWM``) of the worker (target < 200 MB) and of each upload process.

    python bench/s3_upload.py --gb 2.1 --runs 3
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 1024 * 1024


MODES = {
    "upload_file": "baseline boto3 upload_file (file on disk)",
    "writer-raw": "our S3 writer alone, file -> multipart",
    "writer-nocopy": "our S3 writer, file -> MD5+SHA-256 -> multipart, object_metadata off",
    "writer": "our S3 writer, file -> MD5+SHA-256 -> multipart + metadata copy",
    "hashing": "MD5+SHA-256 of the file only, no upload",
    "backup": "backup via API: pg_dump -> MD5+SHA-256 -> S3",
    "staged": "staged: pg_dump > file, then upload_file",
}


def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(mode: str, path: str, endpoint: str, bucket: str, key: str) -> None:
    """Upload ``path`` one way in this fresh process; print seconds and peak RSS as JSON."""
    from shared.config import S3Settings
    from shared.hashing import Digests
    from shared.storage.s3 import S3Storage
    secret = os.environ["BENCH_S3_SECRET"]
    settings = S3Settings(bucket=bucket, endpoint_url=endpoint,
                          access_key=os.environ["BENCH_S3_USER"], secret_key=secret)
    started = time.perf_counter()
    if mode.startswith("writer") or mode == "hashing":
        if mode == "writer-nocopy":
            settings = S3Settings(**{**vars(settings), "object_metadata": False})
        storage = S3Storage(settings)
        digests = Digests()
        with open(path, "rb") as source:
            if mode == "hashing":
                while chunk := source.read(MiB):
                    digests.update(chunk)
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
    print(json.dumps({"seconds": time.perf_counter() - started, "rss_mb": _vmhwm_mb()}))


def run_child(mode: str, path: Path, endpoint: str, bucket: str, key: str) -> dict[str, Any]:
    from tests.minio import MINIO_PASSWORD, MINIO_USER

    env = {**os.environ, "BENCH_S3_USER": MINIO_USER, "BENCH_S3_SECRET": MINIO_PASSWORD,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path), endpoint,
                          bucket, key], env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


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
    stack = None
    try:
        pg.start()
        redis.start()
        minio = MinioServer(root / "minio").start()
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
        db_id = stack.client.register_postgres(pg, "bench")
        local = root / "artifact.dump"
        times: dict[str, list[float]] = {name: [] for name in MODES}
        rss: dict[str, float] = {name: 0.0 for name in MODES}
        size = 0
        for run in range(args.runs):
            os.sync()  # each step starts with no dirty pages left by the previous one
            started = time.perf_counter()
            backup_id = stack.client.post("/backups", json={"database_id": db_id}).json()["id"]
            backup = stack.client.wait_backup(backup_id, timeout=3600)
            times["backup"].append(time.perf_counter() - started)
            assert backup["status"] == "completed", backup["error"]
            size = backup["size_bytes"]
            if run == 0:
                s3.download_file(bucket, backup["storage_key"], str(local))
            stack.client.delete(f"/backups/{backup_id}")
            # Rotate the order so no mode always runs right after a 2 GB upload.
            modes = ["upload_file", "writer", "writer-raw", "writer-nocopy", "hashing"]
            for mode in modes[run % 5:] + modes[:run % 5]:
                os.sync()
                result = run_child(mode, local, minio.endpoint, bucket, f"{mode}-{run}")
                times[mode].append(result["seconds"])
                rss[mode] = max(rss[mode], result["rss_mb"])
                s3.delete_object(Bucket=bucket, Key=f"{mode}-{run}")
            staged = root / "staged.dump"
            os.sync()
            started = time.perf_counter()
            subprocess.run([str(PG_BIN / "pg_dump"), "-Fc", "-Z0", "-h", "127.0.0.1", "-p",
                            str(pg.port), "-U", PG_USER, "-f", str(staged), "bench"],
                           env={**os.environ, "PGPASSWORD": PG_PASSWORD}, check=True)
            result = run_child("upload_file", staged, minio.endpoint, bucket, "staged")
            times["staged"].append(time.perf_counter() - started)
            s3.delete_object(Bucket=bucket, Key="staged")
            staged.unlink()
        worker = stack.workers[0].process
        assert worker is not None
        report(args, size, times, rss, peak_rss_mb(worker.pid))
    finally:
        if stack:
            for process in [stack.api, *stack.workers]:
                process.stop()
        if minio:
            minio.stop()
        redis.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def report(args: argparse.Namespace, size: int, times: dict[str, list[float]],
           rss: dict[str, float], worker_rss: float) -> None:
    median = {name: statistics.median(values) for name, values in times.items()}
    speed = {name: size / 1e6 / seconds for name, seconds in median.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"{platform.python_implementation()} {platform.python_version()}; runs: {args.runs}")
    print(f"artifact: {size / 1e9:.2f} GB (pg_dump -Fc, compression none)")
    for name, label in MODES.items():
        ratio = speed[name] / speed["upload_file"]
        print(f"{label}: median {median[name]:.1f}s {[round(t, 1) for t in times[name]]}, "
              f"{speed[name]:.0f} MB/s, throughput ratio vs upload_file {ratio:.2f}")
    print(f"peak RSS: worker {worker_rss:.0f} MB (target < 200 MB); writer process "
          f"{rss['writer']:.0f} MB; upload_file process {rss['upload_file']:.0f} MB; "
          f"hashing only {rss['hashing']:.0f} MB")


if __name__ == "__main__":
    main()
