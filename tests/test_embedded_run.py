"""`backup-api run`: the embedded default (SQLite, filesystem broker, local storage) works alone."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tests.conftest import Client
from tests.services import PostgresCluster, Process, free_port, printed_key, wait_http


def test_run_takes_a_backup_with_no_external_service(tmp_path: Path,
                                                     pg: PostgresCluster) -> None:
    port = free_port()
    env = {"BACKUP_API_DATA_DIR": str(tmp_path / "data"), "BACKUP_API_CONFIG": "",
           "DATABASE_URL": "", "CELERY_BROKER_URL": ""}
    (tmp_path / "empty.yaml").write_text("")
    env["BACKUP_API_CONFIG"] = str(tmp_path / "empty.yaml")
    # Started from an empty folder: nothing may appear there but what the user asked for.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    run = Process("run", ["run", "--port", str(port)], env, tmp_path / "run.log",
                  cwd=cwd).start()
    try:
        client = Client(f"http://127.0.0.1:{port}", key=printed_key(run))
        wait_http(client.base + "/ready")
        pg.psql("CREATE TABLE IF NOT EXISTS t (x int); INSERT INTO t VALUES (1), (2)")
        db_id = client.register_postgres(pg, "postgres")
        backup = client.wait_backup(
            client.post("/backups", json={"database_id": db_id}).json()["id"])
        assert backup["status"] == "completed", backup["error"]
        assert backup["storage"] == "local"
        artifact = tmp_path / "data" / "backups" / backup["storage_key"]
        assert hashlib.md5(artifact.read_bytes()).hexdigest() == backup["checksum_md5"]
        # The embedded default keeps everything in the data directory.
        assert (tmp_path / "data" / "backup-api.db").exists()
        assert (tmp_path / "data" / "broker").is_dir()
        assert list(cwd.iterdir()) == [], "the filesystem broker wrote into the working dir"
    finally:
        run.stop()
    assert run.process is not None and run.process.returncode == 0, run.log()[-2000:]
    assert "Traceback" not in run.log()
    assert not os.path.exists(tmp_path / "data" / "broker" / "in-progress")
