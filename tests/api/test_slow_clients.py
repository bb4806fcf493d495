"""Slow, half-open and stalled clients cannot stop the API, and a big download stays small.

Attacks, on 127.0.0.1 only, with bounded counts and timeouts:

- 200 connections that send part of a request and then nothing (half a request line,
  half the headers, or the headers and half the body) are held open while ``/health``
  and an authenticated read must still answer in under a second. With gunicorn's
  8 threads, 8 such connections stopped ``/health`` for 45 s.
- A client that stops reading a download must not hold a request thread for ever.

And the streaming promise: a 200 MiB download, read with a pause in the middle, keeps
the API process's memory bounded (it is never buffered whole).
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import requests

from shared.config import load_settings
from shared.metadata_db import MetadataDB
from shared.models import Backup, utcnow
from shared.storage import make_storage
from tests.conftest import Client, Stack
from tests.services import REPO, PostgresCluster, free_port, wait_for

HALF_OPEN = 200
MiB = 1024 * 1024
# Each a request cut short, as a slow or malicious client leaves it.
PARTIAL_REQUESTS = [
    b"GET /health HT",
    b"GET /backups HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: appl",
    b"POST /packages/create HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 400\r\n\r\n{\"database_ids\": [",
]


def _port(api: Client) -> int:
    port = urlsplit(api.base).port
    assert port is not None
    return port


@contextmanager
def _half_open(port: int, count: int) -> Iterator[list[socket.socket]]:
    """Hold ``count`` connections to ``port``, each having sent part of a request."""
    with ExitStack() as stack:
        held = []
        for index in range(count):
            sock = stack.enter_context(closing(
                socket.create_connection(("127.0.0.1", port), timeout=5)))
            sock.sendall(PARTIAL_REQUESTS[index % len(PARTIAL_REQUESTS)])
            held.append(sock)
        yield held


def _timed_get(url: str, headers: Mapping[str, str | bytes] | None = None,
               timeout: float = 5) -> tuple[int, float]:
    started = time.monotonic()
    response = requests.get(url, headers=headers, timeout=timeout)
    return response.status_code, time.monotonic() - started


def test_200_half_open_connections_leave_the_api_answering(api: Client) -> None:
    with _half_open(_port(api), HALF_OPEN) as held:
        time.sleep(1)  # the server has accepted and read what each one sent
        for _ in range(5):
            status, seconds = _timed_get(api.base + "/health")
            assert (status, seconds < 1.0) == (200, True), f"/health took {seconds:.2f}s"
        status, seconds = _timed_get(api.base + "/backups", headers=api.session.headers)
        assert (status, seconds < 1.0) == (200, True), f"/backups took {seconds:.2f}s"
        # They were all still open, waiting (not refused or dropped to make room).
        for sock in held[::20]:
            sock.setblocking(False)
            try:
                data = sock.recv(1)
            except BlockingIOError:
                continue
            raise AssertionError(f"a half-open connection was answered or closed: {data!r}")


# --- a client that stops reading a download ------------------------------------------

# The server as `backup-api api` builds it, around an endless download, with a 3 s
# stall limit instead of minutes and a single request thread to take.
STALLED_SERVER = """
import sys
from api.server import listen, make_server

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    if environ["PATH_INFO"] == "/endless":
        chunk = b"x" * 262144
        return iter(lambda: chunk, None)
    return [b"ok"]

make_server(app, listen("127.0.0.1", int(sys.argv[1]), stalled_send=3), threads=1).run()
"""


def test_a_client_that_stops_reading_a_download_frees_its_thread(tmp_path: Path) -> None:
    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-c", STALLED_SERVER, str(port)], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)},
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/ok", timeout=2).ok, 20,
                 "the server")
        with closing(socket.socket()) as stalled:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            stalled.settimeout(5)
            stalled.connect(("127.0.0.1", port))
            stalled.sendall(b"GET /endless HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert stalled.recv(1024).startswith(b"HTTP/1.1 200")
            # Now it reads nothing more; the only thread is writing to it, and a request
            # waits for that thread until the kernel gives up on the reader.
            status, seconds = _timed_get(f"http://127.0.0.1:{port}/ok", timeout=20)
        assert status == 200
        assert seconds < 15, f"the stalled reader held the thread for {seconds:.1f}s"
    finally:
        server.terminate()
        server.wait(10)
        log.close()


# --- a large download ------------------------------------------------------------------


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _completed_backup(stack: Stack, database_id: str, size: int) -> Backup:
    """Store a ``size``-byte artifact and its completed row, as a worker would leave them.

    Written directly (random bytes through the storage backend, the row through the
    metadata DB): this test is about the HTTP server, and dumping 200 MiB would only
    make it slower.
    """
    settings = load_settings(stack.env["BACKUP_API_CONFIG"], env={**os.environ, **stack.env})
    backup_id = str(uuid.uuid4())
    key = f"{database_id}/{backup_id}.dump"
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with make_storage(settings).writer(key, size_hint=size) as out:
        for _ in range(size // MiB):
            block = os.urandom(MiB)
            md5.update(block)
            sha256.update(block)
            out.write(block)
    now = utcnow()
    backup = Backup(id=backup_id, database_id=database_id, engine="postgres",
                    status="completed", trigger="manual", created_at=now, started_at=now,
                    finished_at=now, size_bytes=size, compression="none",
                    checksum_md5=md5.hexdigest(), checksum_sha256=sha256.hexdigest(),
                    storage="local", storage_key=key)
    db = MetadataDB(stack.env["DATABASE_URL"])
    try:
        with db.session() as session:
            session.add(backup)
    finally:
        db.sql_engine.dispose()
    return backup


def test_a_200_mib_download_streams_with_bounded_memory(stack: Stack,
                                                        pg: PostgresCluster) -> None:
    api, size = stack.client, 200 * MiB
    database_id = api.register_postgres(pg, "postgres")
    backup = _completed_backup(stack, database_id, size)
    assert stack.api.process is not None
    pid = stack.api.process.pid
    before = _rss_kib(pid)
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_kib(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    md5, received = hashlib.md5(), 0
    try:
        with api.session.get(f"{api.base}/backups/{backup.id}/download", stream=True,
                             timeout=60) as response:
            assert response.status_code == 200, response.text
            assert int(response.headers["Content-Length"]) == size
            for index, chunk in enumerate(response.iter_content(MiB)):
                if index == 1:
                    time.sleep(3)  # a slow reader: the server must wait, not buffer it all
                md5.update(chunk)
                received += len(chunk)
    finally:
        done.set()
        sampler.join()
    assert received == size
    assert md5.hexdigest() == backup.checksum_md5
    growth_mib = (peak[0] - before) / 1024
    assert growth_mib < 100, f"the API grew by {growth_mib:.0f} MiB for a 200 MiB download"
    # The log says what was sent, once it was all sent.
    wait_for(lambda: f"/backups/{backup.id}/download" in stack.api.log(), 10, "the access log")
    line = next(line for line in stack.api.log().splitlines()
                if f"/backups/{backup.id}/download" in line)
    assert f'"bytes": {size}' in line and '"status": 200' in line
    assert api.delete(f"/backups/{backup.id}").status_code == 204  # 200 MiB less on disk
