"""What the fault tests inject faults with: a slow proxy, process lookups, a Redis command."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tests.services import Process, RelayProxy


@dataclass
class ThrottledProxy(RelayProxy):
    """A TCP proxy to PostgreSQL relaying the server's bytes at ``rate`` bytes a second.

    A dump through it takes size / rate seconds and then completes: long enough to
    inject a fault while it streams, short enough to see it finish. ``rate`` may be
    changed while it runs.
    """

    rate: int

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        try:
            while not self.stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
                if from_server and self.rate:
                    time.sleep(len(data) / self.rate)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def celery_child(worker: Process, timeout: float = 60) -> int:
    """Return the pid of the Celery worker that ``backup-api worker`` supervises."""
    assert worker.process is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in _children(worker.process.pid):
            if b"--unsupervised" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        time.sleep(0.2)
    raise AssertionError(f"no Celery worker under {worker.name} after {timeout}s")


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # The command name (field 2) may hold spaces; the fields after it do not.
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry))
    return found


def redis_command(port: int, *words: str) -> bytes:
    """Send one command to Redis (RESP) and return the first line of its answer."""
    request = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).split(b"\r\n", 1)[0]
