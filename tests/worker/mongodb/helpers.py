"""Helpers of the MongoDB end-to-end tests: register a database, take a backup, check a failure."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.conftest import Client, Stack
from tests.ferretdb import PLAIN, FerretDB
from tests.services import PG_PASSWORD, PG_USER


def stop(stack: Stack) -> None:
    for process in [stack.api, *stack.workers]:
        process.stop()


def register(api: Client, ferret: FerretDB, database: str, **extra: Any) -> str:
    db_id = extra.pop("id", f"mongo-{uuid.uuid4().hex[:8]}")
    body = {"id": db_id, "engine": "mongodb", "host": "127.0.0.1", "port": ferret.port,
            "username": PG_USER, "password": PG_PASSWORD, "database_name": database,
            "options": dict(PLAIN), **extra}
    response = api.post("/databases", json=body)
    assert response.status_code == 201, response.text
    return db_id


def take_backup(api: Client, db_id: str, timeout: float = 120) -> dict[str, Any]:
    created = api.post("/backups", json={"database_id": db_id})
    assert created.status_code == 202, created.text
    return api.wait_backup(created.json()["id"], timeout=timeout)


def assert_failed_cleanly(backup: dict[str, Any], stack: Stack, db_id: str, api: Client) -> None:
    assert backup["status"] == "failed"
    assert backup["storage_key"] is None and backup["checksum_md5"] is None
    assert backup["size_bytes"] is None
    assert not (stack.storage_dir / db_id).exists()
    assert api.get(f"/backups/{backup['id']}/download").status_code == 409


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cmdlines() -> Iterator[str]:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            yield raw.replace(b"\0", b" ").decode(errors="replace")
