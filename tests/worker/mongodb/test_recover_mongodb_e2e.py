"""`backup-api recover restore` of a MongoDB backup into FerretDB, from the files alone:
the source database named in the sidecar is mapped onto the URL's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Client, Stack
from tests.ferretdb import FerretDB
from tests.peers import path_with_peers
from tests.services import PG_PASSWORD, PG_USER
from tests.worker.mongodb.helpers import register, take_backup
from tests.worker.mongodb.test_restore_api_e2e import _documents
from tests.worker.test_recover_e2e import recover


@pytest.mark.requires_peer("mongodump", "mongorestore")
def test_recover_restore_of_a_mongodb_backup(api: Client, mongo_stack: Stack, ferret: FerretDB,
                                             source: str, tmp_path: Path) -> None:
    backup = take_backup(api, register(api, ferret, source))
    assert backup["status"] == "completed", backup["error"]
    url = f"mongodb://{PG_USER}@127.0.0.1:{ferret.port}/shop_recovered?authMechanism=PLAIN"
    restored = recover(tmp_path, "restore", backup["storage_key"], "--storage",
                       str(mongo_stack.storage_dir), "--to", url, "--no-indexes",
                       MONGODB_PASSWORD=PG_PASSWORD, PATH=path_with_peers())
    assert restored.returncode == 0, restored.stderr
    assert backup["checksum_md5"] in restored.stdout
    assert _documents(ferret, "shop_recovered") == _documents(ferret, source)
    assert PG_PASSWORD not in restored.stdout + restored.stderr
