"""Benchmark: building a package from local storage vs the shell tools, side by side.

Members are random bytes (like gzip/zstd artifacts: incompressible), written to a
local storage directory. For each format:

- baseline ``zip``:    ``zip -q -0 -j out.zip a b && md5sum out.zip && sha256sum out.zip``
- baseline ``tar.gz``: ``tar -cf - a b | gzip -1 > out.tar.gz && md5sum … && sha256sum …``
- ours: ``build_package`` (read each member, verify its MD5, archive, MD5 + SHA-256 of
  the output, write through the storage writer), in a fresh process.

Reports median wall times, their ratio (target <= 1.5: ours also verifies every
member's MD5 on the way) and our peak RSS (target: flat, under 100 MB, whatever the
member size).

    python bench/package_build.py --size-mb 512 --runs 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.models import Package  # noqa: E402
from shared.packaging.selection import Member, Selection  # noqa: E402
from shared.storage import LocalStorage  # noqa: E402
from worker.package import build_package  # noqa: E402

WHEN = datetime(2026, 11, 26, tzinfo=UTC)


def make_members(root: Path, count: int, size_mb: int) -> list[Member]:
    members = []
    for index in range(count):
        key = f"db{index}/2026/11/26/db{index}-20261126T000000Z-0000000{index}.dump.gz"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        md5, sha = hashlib.md5(), hashlib.sha256()
        with path.open("wb") as out:
            for _ in range(size_mb):
                block = os.urandom(1024 * 1024)
                md5.update(block)
                sha.update(block)
                out.write(block)
        members.append(Member(database_id=f"db{index}", engine="postgres",
                              backup_id=f"0000000{index}", storage_key=key,
                              size=size_mb * 1024 * 1024, md5=md5.hexdigest(),
                              sha256=sha.hexdigest(), compression="gzip", created_at=WHEN))
    return members


def child(root: str, fmt: str, members_json: str) -> None:
    """Build one package in this fresh process; print wall time and peak RSS."""
    members = [Member(**{**m, "created_at": WHEN}) for m in json.loads(members_json)]
    package = Package(id="11111111-2222-3333-4444-555555555555", format=fmt,
                      created_at=WHEN, storage_key=f"_packages/bench.{fmt}")
    started = time.perf_counter()
    build_package(LocalStorage(root), package, Selection(members, []))
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": peak_mb}))


def ours(root: Path, fmt: str, members: list[Member]) -> tuple[float, float]:
    payload = json.dumps([{**vars(m), "created_at": None} for m in members])
    out = subprocess.run([sys.executable, __file__, "--child", str(root), fmt, payload],
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    return result["seconds"], result["peak_rss_mb"]


def baseline(root: Path, fmt: str, members: list[Member], out: Path) -> float:
    files = " ".join(str(root / m.storage_key) for m in members)
    build = (f"zip -q -0 -j {out} {files}" if fmt == "zip"
             else f"tar -cf - {files} 2>/dev/null | gzip -1 > {out}")
    started = time.perf_counter()
    subprocess.run(f"{build} && md5sum {out} >/dev/null && sha256sum {out} >/dev/null",
                   shell=True, check=True)
    elapsed = time.perf_counter() - started
    out.unlink()
    return elapsed


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=512, help="size of each member")
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-package-") as tmp:
        root = Path(tmp)
        members = make_members(root, args.members, args.size_mb)
        print(f"{args.members} members of {args.size_mb} MiB, {args.runs} runs, median")
        for fmt in ("zip", "tar.gz"):
            base = [baseline(root, fmt, members, root / f"baseline.{fmt}")
                    for _ in range(args.runs)]
            runs = [ours(root, fmt, members) for _ in range(args.runs)]
            ours_s = statistics.median(r[0] for r in runs)
            base_s = statistics.median(base)
            print(f"{fmt:7} baseline {base_s:7.2f}s  ours {ours_s:7.2f}s  "
                  f"ratio {ours_s / base_s:5.2f}  peak RSS {max(r[1] for r in runs):6.1f} MB")


if __name__ == "__main__":
    main()
