"""Real services for the tests: a throwaway PostgreSQL cluster, Redis, and our processes.

Each starts on a free port on 127.0.0.1 and is stopped by the fixture that made it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import requests

REPO = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("BACKUP_API_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "backup"
PG_PASSWORD = "pg-Test-Secret-4471"
REDIS_DATABASES = 256
# The admin key of every stack start_stack makes (declared in its config through ${VAR}).
TEST_API_KEY = "bak_" + secrets.token_urlsafe(32)
# BACKUP_API_SECRET_KEY of every stack: encrypts the passwords its metadata DB stores.
TEST_SECRET_KEY = secrets.token_hex(32)


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ProcessExited:
            raise
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {timeout}s")


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb refuses to run as root; run the cluster as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class PostgresCluster:
    root: Path
    port: int = field(default_factory=free_port)

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pw"
        pwfile.write_text(PG_PASSWORD)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(_as_postgres([
            str(PG_BIN / "initdb"), "-D", str(self.datadir), "-U", PG_USER,
            f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust",
            "-E", "UTF8", "--locale=C.UTF-8"]), check=True, capture_output=True)
        self.resume()

    def resume(self) -> None:
        """Start the server on the existing data directory (again, after ``stop``)."""
        subprocess.run(_as_postgres([
            str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "log"),
            "-w", "-t", "60", "start", "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"]),
            check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.datadir),
                                     "-m", "immediate", "stop"]), capture_output=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, "-d", database,
             "-c", sql], env={**os.environ, "PGPASSWORD": PG_PASSWORD},
            capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout.strip()

    def create_database(self, name: str) -> None:
        self.psql(f'CREATE DATABASE "{name}"')


@dataclass
class Redis:
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--databases", str(REDIS_DATABASES),
             "--dir", str(self.root)],
            stdout=open(self.root / "redis.log", "wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: _redis_ping(self.port), 20, "redis")

    def stop(self) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(10)


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


@dataclass
class Process:
    """One of our own processes (``backup-api api``/``worker``/``beat``), logging to a file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    cwd: Path = REPO

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli", *self.argv],
            env={**os.environ, "PYTHONPATH": str(REPO), **self.env}, cwd=self.cwd,
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_http(url: str, timeout: float = 60, process: Process | None = None) -> None:
    """Wait for ``url`` to answer 200; if ``process`` (the server) exits first, fail at
    once with the end of its log, which says why."""
    def up() -> bool:
        if process is not None and process.process is not None \
                and process.process.poll() is not None:
            raise ProcessExited(f"{process.name} exited with {process.process.returncode} "
                                f"before {url} answered; its log ends:\n{process.log()[-4000:]}")
        return requests.get(url, timeout=2).status_code == 200
    wait_for(up, timeout, url)


class ProcessExited(RuntimeError):
    """A server a test waits for died: waiting longer would not help."""


PRINTED_KEY = re.compile(r"^\s+(bak_[A-Za-z0-9_-]{43})$", re.MULTILINE)


def backup_api_cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``backup-api ARGV`` as a user would, with a stack's environment."""
    return subprocess.run([sys.executable, "-m", "cli", *argv],
                          env={**os.environ, "PYTHONPATH": str(REPO), **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def create_key(env: dict[str, str], name: str, scopes: str) -> str:
    """Create a key with ``backup-api keys create``; return the key it printed."""
    result = backup_api_cli(env, "keys", "create", "--name", name, "--scope", scopes)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def printed_key(run: Process, timeout: float = 60) -> str:
    """Return the admin key ``backup-api run`` printed on its first start."""
    wait_for(lambda: PRINTED_KEY.search(run.log()) is not None, timeout, "the printed key")
    match = PRINTED_KEY.search(run.log())
    assert match is not None
    return match.group(1)


def closed_port() -> int:
    """Return a port on 127.0.0.1 where nothing listens (connections are refused)."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cmdlines() -> Iterator[str]:
    """Yield the command line of every process, as ``ps`` would show it."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            yield raw.replace(b"\0", b" ").decode(errors="replace")


@contextmanager
def silent_tcp_server() -> Iterator[int]:
    """Yield the port of a TCP server that accepts and never answers (clients hang)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


@contextmanager
def running_cluster(prefix: str) -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of its own, removed afterwards.

    Not under pytest's 0700 temp root: the cluster runs as the postgres user.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    cluster = PostgresCluster(root)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RelayProxy:
    """A TCP proxy to a local port; a subclass decides how it relays each direction
    (``_pump``): the tests slow a dump down or stop it mid-stream with one."""

    target_port: int
    server: socket.socket = field(default_factory=socket.socket, kw_only=True)
    sockets: list[socket.socket] = field(default_factory=list, kw_only=True)
    stop: threading.Event = field(default_factory=threading.Event, kw_only=True)

    @property
    def port(self) -> int:
        return int(self.server.getsockname()[1])

    def start(self) -> Self:
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
            threading.Thread(target=self._pump, args=(client, upstream, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        raise NotImplementedError
