"""What the fault tests inject faults with: a slow proxy, process lookups, a Redis command."""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import Process


@dataclass
class ThrottledProxy:
    """A TCP proxy to PostgreSQL relaying the server's bytes at ``rate`` bytes a second.

    A dump through it takes size / rate seconds and then completes: long enough to
    inject a fault while it streams, short enough to see it finish.
    """

    target_port: int
    rate: int
    server: socket.socket = field(default_factory=socket.socket)
    sockets: list[socket.socket] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def start(self) -> ThrottledProxy:
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        for sock in [self.server, *self.sockets]:
            sock.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, None),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.rate),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, rate: int | None) -> None:
        try:
            while not self.stop.is_set():
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
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
