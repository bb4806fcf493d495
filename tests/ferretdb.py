"""Real MongoDB-side peers for the tests: FerretDB on the test PostgreSQL, and the tools.

The binaries are built from the Go module proxy by ``scripts/peers.sh`` into
``~/.cache/backup-api/bin``; ``scripts/test.sh`` exports that directory as
``BACKUP_API_PEERS_BIN``. A missing one skips the tests that need it (``tests.peers``).
FerretDB v1 speaks the MongoDB wire protocol and stores documents in PostgreSQL; it
authenticates with ``PLAIN`` against the PostgreSQL user.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.peers import path_with_peers as path_with_peers  # re-exported for the tests
from tests.peers import require
from tests.services import PG_PASSWORD, PG_USER, PostgresCluster, free_port, wait_for

PLAIN = {"authMechanism": "PLAIN"}


def peer(name: str) -> str:
    """Return the path of peer binary ``name``; skip the test when it is missing."""
    return require(name)


def path_without(tool: str) -> str:
    """Return ``PATH`` minus every directory that holds ``tool``."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not os.access(os.path.join(d, tool), os.X_OK)]
    return os.pathsep.join(dirs)


@dataclass
class FerretDB:
    """A FerretDB v1 server using ``database`` of the test PostgreSQL cluster as storage."""

    pg: PostgresCluster
    log_path: Path
    database: str = "ferretdb"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> FerretDB:
        binary = peer("ferretdb")  # first: a missing binary skips before anything is made
        self.pg.create_database(self.database)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [binary, "--handler=postgresql",
             f"--postgresql-url=postgres://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{self.pg.port}/"
             f"{self.database}",
             f"--listen-addr=127.0.0.1:{self.port}", "--telemetry=disable", "--debug-addr=-",
             "--log-level=warn",
             # Its state.json would otherwise land in the checkout (the working directory).
             f"--state-dir={self.log_path.parent}"],
            stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self.client().admin.command("ping")["ok"] == 1, 30, "ferretdb")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def client(self) -> Any:
        """Return a pymongo client logged in as the PostgreSQL user (PLAIN)."""
        import pymongo

        return pymongo.MongoClient(
            host="127.0.0.1", port=self.port, username=PG_USER, password=PG_PASSWORD,
            authMechanism="PLAIN", serverSelectionTimeoutMS=5000, tz_aware=True)

    def tool_args(self) -> list[str]:
        """Connection flags for mongorestore; the password goes through ``--config``."""
        return ["--host=127.0.0.1", f"--port={self.port}", f"--username={PG_USER}",
                "--authenticationMechanism=PLAIN"]
