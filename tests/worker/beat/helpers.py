"""Helpers for the scheduling tests: beat processes, SQL on the metadata DB, a stalling proxy."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import Stack
from tests.services import PostgresCluster, Process, RelayProxy


def start_beat(stack: Stack, name: str) -> Process:
    """Start a ``backup-api beat`` process sharing the stack's config and metadata DB."""
    return Process(name, ["beat"], stack.env, stack.root / f"{name}.log").start()


def meta_sql(pg: PostgresCluster, stack: Stack, sql: str) -> str:
    """Run ``sql`` on the stack's metadata DB (to backdate rows as time would)."""
    return pg.psql(sql, stack.env["DATABASE_URL"].rsplit("/", 1)[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.3) -> Any:
    """Poll ``check`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class StallingProxy(RelayProxy):
    """A TCP proxy to PostgreSQL that stops relaying the server's bytes after ``budget``.

    pg_dump through it receives the catalog and the first megabytes of a table, then
    waits on its socket: a real dump stopped mid-stream, deterministically.
    """

    budget: int

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        budget = self.budget if from_server else None
        passed = 0
        try:
            while budget is None or passed < budget:
                data = source.recv(min(65536, budget - passed) if budget else 65536)
                if not data:
                    break
                sink.sendall(data)
                passed += len(data)
            self.stop.wait()  # stalled: keep both sockets open, relay nothing more
        except OSError:
            pass


def storage_files(root: Path) -> list[Path]:
    """Every file under ``root``, temporary ones included."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
