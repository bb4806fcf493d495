"""Nothing the embedded default writes is readable by another local user (issue 13).

`backup-api run` is started as a user would, in a folder every user can traverse (not
under pytest's private temp root, which would hide the files anyway). It takes a backup
and a package; then every file it made must be 0600 and every directory 0700, the user
`nobody` must fail to read the metadata DB and an artifact, and the SQLite files must
not hold the database password. The generated secret key is reused by the next start.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import Client
from tests.services import (
    PG_PASSWORD,
    PostgresCluster,
    Process,
    free_port,
    printed_key,
    wait_for,
    wait_http,
)


@dataclass
class EmbeddedRun:
    root: Path
    env: dict[str, str]
    client: Client
    backup: dict[str, object]
    package: dict[str, object]

    @property
    def data(self) -> Path:
        return self.root / "data"


def _start(root: Path, env: dict[str, str], log: str, port: int) -> Process:
    return Process("run", ["run", "--port", str(port)], env, root / log, cwd=root).start()


@pytest.fixture(scope="module")
def embedded(pg: PostgresCluster) -> Iterator[EmbeddedRun]:
    # 0755, like a home directory or /srv: only our own modes protect what is inside.
    root = Path(tempfile.mkdtemp(prefix="backup-api-modes-"))
    os.chmod(root, 0o755)
    (root / "config.yaml").write_text("package-conf:\n  compression: zip\n")
    env = {"BACKUP_API_DATA_DIR": str(root / "data"), "BACKUP_API_CONFIG":
           str(root / "config.yaml"), "DATABASE_URL": "", "CELERY_BROKER_URL": "",
           "BACKUP_API_SECRET_KEY": "", "BACKUP_API_SECRET_KEY_FILE": ""}
    port = free_port()
    run = _start(root, env, "run.log", port)
    try:
        client = Client(f"http://127.0.0.1:{port}", key=printed_key(run))
        wait_http(client.base + "/ready")
        pg.psql("CREATE TABLE IF NOT EXISTS private_t (x int); INSERT INTO private_t VALUES (1)")
        db_id = client.register_postgres(pg, "postgres")
        backup = client.wait_backup(
            client.post("/backups", json={"database_id": db_id}).json()["id"])
        assert backup["status"] == "completed", backup["error"]
        created = client.post("/packages/create", json={"database_ids": [db_id]})
        assert created.status_code == 202, created.text
        package = client.wait_done(f"/packages/{created.json()['id']}")
        assert package["status"] == "completed", package["error"]
    finally:
        run.stop()
    assert run.process is not None and run.process.returncode == 0, run.log()[-2000:]
    assert "Traceback" not in run.log()
    yield EmbeddedRun(root, env, client, backup, package)
    shutil.rmtree(root, ignore_errors=True)


def test_every_file_is_0600_and_every_directory_0700(embedded: EmbeddedRun) -> None:
    found = {"files": 0, "dirs": 1}
    assert stat.S_IMODE(embedded.data.stat().st_mode) == 0o700
    wrong = []
    for dirpath, dirnames, filenames in os.walk(embedded.data):
        for name in dirnames:
            path = Path(dirpath, name)
            found["dirs"] += 1
            if stat.S_IMODE(path.lstat().st_mode) != 0o700:
                wrong.append(f"{oct(stat.S_IMODE(path.lstat().st_mode))} {path}/")
        for name in filenames:
            path = Path(dirpath, name)
            found["files"] += 1
            info = path.lstat()
            assert stat.S_ISREG(info.st_mode), f"{path} is not a regular file"
            if stat.S_IMODE(info.st_mode) != 0o600:
                wrong.append(f"{oct(stat.S_IMODE(info.st_mode))} {path}")
    assert not wrong, "readable by others:\n" + "\n".join(wrong)
    # What was checked: the metadata DB, the key, the broker, the artifacts and sidecars.
    names = {p.name for p in embedded.data.rglob("*")}
    assert {"backup-api.db", "secret.key", "broker", "backups"} <= names
    artifact = embedded.data / "backups" / str(embedded.backup["storage_key"])
    assert artifact.exists() and Path(f"{artifact}.json").exists()
    assert (embedded.data / "backups" / str(embedded.package["storage_key"])).exists()
    assert found["files"] >= 6 and found["dirs"] >= 5, found


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to user nobody needs root")
def test_another_user_cannot_read_the_metadata_db_or_an_artifact(
        embedded: EmbeddedRun) -> None:
    artifact = embedded.data / "backups" / str(embedded.backup["storage_key"])
    for path in (embedded.data / "backup-api.db", artifact, embedded.data / "secret.key"):
        # The root folder is 0755: only the data directory and file modes stop nobody.
        result = subprocess.run(["cat", str(path)], user="nobody", capture_output=True,
                                text=True, errors="replace", timeout=30)
        assert result.returncode != 0, f"nobody read {path}"
        assert "Permission denied" in result.stderr, result.stderr
    listing = subprocess.run(["ls", str(embedded.data)], user="nobody", capture_output=True,
                             text=True, timeout=30)
    assert listing.returncode != 0 and "Permission denied" in listing.stderr


def test_the_sqlite_files_hold_no_password(embedded: EmbeddedRun) -> None:
    files = [p for p in embedded.data.iterdir() if p.name.startswith("backup-api.db")]
    assert embedded.data / "backup-api.db" in files
    for path in files:  # the database, and its WAL and shared memory when present
        assert PG_PASSWORD.encode() not in path.read_bytes(), path


def test_the_generated_key_is_0600_and_reused_by_the_next_start(
        embedded: EmbeddedRun, pg: PostgresCluster) -> None:
    key_file = embedded.data / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first_key = key_file.read_text()
    assert "Generated" in (embedded.root / "run.log").read_text()

    port = free_port()
    again = _start(embedded.root, embedded.env, "run2.log", port)
    try:
        wait_for(lambda: "Backup API on" in again.log(), 60, "the second start")
        client = Client(f"http://127.0.0.1:{port}", key=embedded.client.key)
        wait_http(client.base + "/ready")
        # The stored password still opens: the backup connects and completes.
        backup = client.wait_backup(client.post("/backups", json={
            "database_id": embedded.backup["database_id"]}).json()["id"])
        assert backup["status"] == "completed", backup["error"]
    finally:
        again.stop()
    assert key_file.read_text() == first_key
    assert "Generated" not in again.log()
    assert again.process is not None and again.process.returncode == 0, again.log()[-2000:]
