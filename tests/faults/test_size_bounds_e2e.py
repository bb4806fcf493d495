"""Bounds on a backup's size: ``databases[].max_size_bytes`` stops a dump that grows past
it, ``global.min_free_bytes`` refuses one the local disk has no room for, before anything
connects. Through the API, with real pg_dump and workers; the user reads the reason."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_postgres import CleartextTrap
from tests.faults.conftest import FAULT_CONFIG, StackFactory
from tests.services import PostgresCluster, Redis
from tests.worker.beat.helpers import storage_files

pytestmark = pytest.mark.faults

LIMIT = 5_000_000


def _pg_dumps(port: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if argv and argv[0].endswith(b"pg_dump") and str(port).encode() in argv:
            found.append(b" ".join(argv).decode(errors="replace"))
    return found


def test_a_dump_growing_past_max_size_bytes_is_stopped_and_leaves_nothing(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, source_db: str,
) -> None:
    # The ~30 MB table, uncompressed: six times the limit.
    config = FAULT_CONFIG + f"""databases:
  - id: bounded
    engine: postgres
    host: 127.0.0.1
    port: ${{TEST_PG_PORT}}
    username: backup
    password: ${{TEST_PG_PASSWORD}}
    database_name: {source_db}
    compression: none
    max_size_bytes: {LIMIT}
"""
    stack = fault_stack(pg, redis, config=config)
    api = stack.client
    failed = api.wait_backup(api.post("/backups", json={"database_id": "bounded"}).json()["id"])
    assert failed["status"] == "failed"
    assert failed["error"].startswith(
        f"the backup exceeded max_size_bytes of 'bounded': {LIMIT} bytes (4.8 MiB), "), \
        failed["error"]
    assert failed["error"].endswith("bytes written; pg_dump was stopped and the partial "
                                    "artifact removed")
    written = int(failed["error"].split("), ")[1].split(" bytes written")[0])
    assert LIMIT < written <= LIMIT + 1024 * 1024  # stopped at the first chunk past it
    assert failed["storage_key"] is None
    assert storage_files(stack.storage_dir) == []
    assert _pg_dumps(pg.port) == []


@pytest.fixture
def trap() -> Iterator[CleartextTrap]:
    running = CleartextTrap().start()
    yield running
    running.close()


def test_min_free_bytes_beyond_the_free_space_fails_before_anything_connects(
    fault_stack: StackFactory, pg: PostgresCluster, redis: Redis, trap: CleartextTrap,
    tmp_path: Path,
) -> None:
    free = shutil.disk_usage(tmp_path).free
    floor = free * 4  # more than the disk could ever free
    config = FAULT_CONFIG.replace("  max_attempts: 2\n",
                                  f"  max_attempts: 2\n  min_free_bytes: {floor}\n")
    stack = fault_stack(pg, redis, config=config)
    api = stack.client
    # Any connection would reach the trap: it counts them.
    db = api.register_postgres(pg, "postgres", port=trap.port)
    failed = api.wait_backup(api.post("/backups", json={"database_id": db}).json()["id"])
    assert failed["status"] == "failed"
    error: str = failed["error"]
    assert error.startswith("not enough free space on local storage: "), error
    assert f" free, {floor} bytes (" in error  # needed: no previous backup, only the floor
    assert f" needed: global.min_free_bytes {floor} (" in error
    assert error.endswith("; nothing was dumped")
    reported_free = int(error.split("storage: ")[1].split(" bytes")[0])
    assert reported_free < floor
    assert trap.connections == 0
    assert storage_files(stack.storage_dir) == []
