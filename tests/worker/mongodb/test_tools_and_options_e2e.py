"""check-config reports a missing or present mongodump; engine options are validated and masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Client
from tests.ferretdb import FerretDB, path_without
from tests.peers import path_with_peers
from tests.services import PG_PASSWORD, PG_USER, REPO
from tests.worker.mongodb.helpers import (
    register,
)


def _check_config(tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.write_text("databases:\n  - {id: logs, engine: mongodb, host: 127.0.0.1,"
                      " database_name: logs, options: {authMechanism: PLAIN}}\n")
    return subprocess.run(
        [sys.executable, "-m", "cli", "check-config", str(config)], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PATH": path},
        capture_output=True, text=True, timeout=60)


def test_check_config_reports_a_missing_mongodump(tmp_path: Path) -> None:
    missing = _check_config(tmp_path, path_without("mongodump"))
    assert missing.returncode == 0
    assert ("warning: mongodump not found: install it or put it on PATH (needed by logs)"
            in missing.stderr)
    assert json.loads(missing.stdout)["tools"]["mongodump"].startswith("missing: ")


@pytest.mark.requires_peer("mongodump")
def test_check_config_finds_mongodump_on_path(tmp_path: Path) -> None:
    present = _check_config(tmp_path, path_with_peers())
    assert present.returncode == 0 and "warning" not in present.stderr, present.stderr
    assert json.loads(present.stdout)["tools"]["mongodump"].endswith("/mongodump")


def test_options_are_validated_and_a_uri_password_is_never_shown(
    api: Client, ferret: FerretDB,
) -> None:
    bad = api.post("/databases", json={
        "id": "bad-opts", "engine": "mongodb", "host": "h", "database_name": "d",
        "options": {"authSorce": "admin", "tls": "yes"}})
    assert bad.status_code == 422
    assert "options.authSorce: unknown option for engine mongodb" in bad.json()["message"]
    assert "options.tls: must be true or false" in bad.json()["message"]

    uri = f"mongodb://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{ferret.port}/?authMechanism=PLAIN"
    db_id = register(api, ferret, "shop", options={"uri": uri})
    shown = api.get(f"/databases/{db_id}").json()["options"]["uri"]
    assert PG_PASSWORD not in shown and shown.startswith(f"mongodb://{PG_USER}:***@127.0.0.1")
    patched = api.patch(f"/databases/{db_id}", json={"options": {"sslmode": "require"}})
    assert patched.status_code == 422
    assert "options.sslmode: unknown option for engine mongodb" in patched.json()["message"]
