"""Bad input gives a failed MongoDB backup with a readable reason and no artifact."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tests.conftest import Client, Stack, start_stack
from tests.ferretdb import FerretDB, path_without
from tests.services import PG_USER, PostgresCluster, Redis, closed_port, cmdlines
from tests.worker.mongodb.helpers import (
    assert_failed_cleanly,
    register,
    stop,
    take_backup,
)

# These failures come from mongodump itself; the missing-mongodump test below needs none.
needs_mongodump = pytest.mark.requires_peer("mongodump")


@needs_mongodump
def test_wrong_password_fails_readably(api: Client, mongo_stack: Stack, ferret: FerretDB,
                                       source: str) -> None:
    secret = "Wrong-Mongo-pw-7731"
    db_id = register(api, ferret, source, password=secret)
    backup = take_backup(api, db_id)
    assert_failed_cleanly(backup, mongo_stack, db_id, api)
    assert "mongodump exited with code 1" in backup["error"]
    assert "password authentication failed" in backup["error"]
    assert secret not in backup["error"]
    assert secret not in mongo_stack.logs()


@needs_mongodump
def test_unknown_host_fails_readably(api: Client, mongo_stack: Stack, ferret: FerretDB) -> None:
    db_id = register(api, ferret, "shop", host="no-such-host.invalid")
    backup = take_backup(api, db_id)
    assert_failed_cleanly(backup, mongo_stack, db_id, api)
    # Unknown, refused or filtered: one sentence (the API is no port scanner); the
    # worker log keeps the driver's own words.
    assert backup["error"] == ("mongodump exited with code 1: could not connect to the "
                               f"database server at no-such-host.invalid:{ferret.port} "
                               "(details in the worker log)")
    assert "server selection error" in mongo_stack.logs()


@needs_mongodump
def test_missing_database_fails_instead_of_an_empty_archive(
    api: Client, mongo_stack: Stack, ferret: FerretDB, source: str,
) -> None:
    # mongodump exits 0 for a database that does not exist, writing an archive with a
    # header and no collection: restoring it would silently restore nothing.
    db_id = register(api, ferret, "no_such_database")
    backup = take_backup(api, db_id)
    assert_failed_cleanly(backup, mongo_stack, db_id, api)
    assert backup["error"] == (
        "mongodump found no collections in database 'no_such_database': it does not exist, "
        "is empty, or the user may not read it")


def test_mongodump_missing_from_path(workdir: Path, pg: PostgresCluster, redis: Redis,
                                     ferret: FerretDB, source: str) -> None:
    stack = start_stack(workdir / "no-mongodump", pg, redis, workers=0)
    try:
        stack.start_worker("bare", PATH=path_without("mongodump"))
        db_id = register(stack.client, ferret, source)
        backup = take_backup(stack.client, db_id)
        assert_failed_cleanly(backup, stack, db_id, stack.client)
        assert backup["error"] == "mongodump not found: install it or put it on PATH"
        # The worker said so at start, before any backup.
        assert "mongodump missing: mongodump not found" in stack.workers[0].log()
    finally:
        stop(stack)


@needs_mongodump
def test_uri_password_is_redacted_from_the_error(api: Client, mongo_stack: Stack,
                                                 ferret: FerretDB) -> None:
    # mongodump repeats the whole connection string when it cannot connect.
    secret = "Uri-Secret-3391"
    closed = closed_port()
    uri = f"mongodb://{PG_USER}:{secret}@127.0.0.1:{closed}/?authMechanism=PLAIN"
    db_id = register(api, ferret, "shop", username=None, password=None, options={"uri": uri})
    backup = take_backup(api, db_id)
    assert_failed_cleanly(backup, mongo_stack, db_id, api)
    assert backup["error"].endswith("could not connect to the database server at "
                                    "127.0.0.1 (details in the worker log)")
    assert f"mongodb://{PG_USER}:***@127.0.0.1:{closed}/" in mongo_stack.logs()
    assert "connection refused" in mongo_stack.logs()
    assert secret not in backup["error"]
    assert secret not in mongo_stack.logs()
    assert secret not in json.dumps(api.get(f"/databases/{db_id}").json())


@needs_mongodump
def test_password_never_on_the_command_line(api: Client, ferret: FerretDB,
                                            silent_server: int) -> None:
    secret = "Hidden-Mongo-5521"
    db_id = register(api, ferret, "shop", port=silent_server, password=secret)
    created = api.post("/backups", json={"database_id": db_id})
    assert created.status_code == 202
    seen = False
    for _ in range(100):
        for cmdline in cmdlines():
            if "mongodump" in cmdline and f"--port={silent_server}" in cmdline:
                seen = True
                assert secret not in cmdline
                assert "--config=" in cmdline
        if seen:
            break
        threading.Event().wait(0.1)
    assert seen, "mongodump never showed up in the process list"
    backup = api.wait_backup(created.json()["id"], timeout=60)
    assert backup["status"] == "failed"
    assert secret not in backup["error"]
