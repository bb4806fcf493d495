"""Packages through the API: built by a real worker from stored backups, downloaded,
unpacked with the standard library, checked against the backup rows, and restored."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.packages.conftest import MAX_PACKAGES, RETENTION_DAYS, PackageStack
from tests.services import PG_BIN, PG_PASSWORD, PG_USER, PostgresCluster
from tests.worker.test_backup_postgres_e2e import CONTENT_QUERY, SEED_SQL

NOTES_SQL = """
CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes SELECT g, repeat('note ' || g, 20) FROM generate_series(1, 2000) g;
"""
NOTES_QUERY = "SELECT md5(string_agg(n::text, ',' ORDER BY n.id)) FROM notes n"


@pytest.fixture(scope="module")
def sources(pg: PostgresCluster) -> dict[str, str]:
    """Two source databases of different shapes; name → content query."""
    pg.create_database("pkg_shop")
    pg.psql(SEED_SQL, "pkg_shop")
    pg.create_database("pkg_notes")
    pg.psql(NOTES_SQL, "pkg_notes")
    return {"pkg_shop": CONTENT_QUERY, "pkg_notes": NOTES_QUERY}


def _register(packages: PackageStack, pg: PostgresCluster, database: str,
              **extra: Any) -> str:
    return packages.client.register_postgres(pg, database,
                                             id=f"{database}-{uuid.uuid4().hex[:6]}", **extra)


def _unpack(fmt: str, data: bytes) -> dict[str, bytes]:
    """Read every member with the standard library (zipfile checks each CRC)."""
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.testzip() is None
            return {name: archive.read(name) for name in archive.namelist()}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
                for m in archive.getmembers()}


def _download(packages: PackageStack, package: dict[str, Any]) -> bytes:
    response = packages.client.get(f"/packages/{package['id']}/download")
    assert response.status_code == 200, response.text
    assert int(response.headers["Content-Length"]) == package["size_bytes"]
    assert response.content.__len__() == package["size_bytes"]
    assert hashlib.md5(response.content).hexdigest() == package["checksum_md5"]
    assert hashlib.sha256(response.content).hexdigest() == package["checksum_sha256"]
    suffix = ".zip" if package["format"] == "zip" else ".tar.gz"
    assert response.headers["Content-Disposition"].endswith(f'{suffix}"')
    return response.content


def _pg_restore(pg: PostgresCluster, dump: Path, database: str) -> None:
    pg.create_database(database)
    subprocess.run(
        [str(PG_BIN / "pg_restore"), "--no-owner", "--exit-on-error", "-h", "127.0.0.1",
         "-p", str(pg.port), "-U", PG_USER, "-d", database, str(dump)],
        env={**os.environ, "PGPASSWORD": PG_PASSWORD}, check=True, capture_output=True)


def _counter(packages: PackageStack, pg: PostgresCluster, status: str) -> float:
    """Read backup_api_packages_total{status} from the metadata DB's counters table."""
    meta = packages.stack.env["DATABASE_URL"].rsplit("/", 1)[-1]
    value = pg.psql("SELECT value FROM counters WHERE name = 'backup_api_packages_total' "
                    f"AND labels = '{{\"status\":\"{status}\"}}'", meta)
    return float(value or 0)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_package_of_two_databases_unpacks_verifies_and_restores(
    packages: PackageStack, pg: PostgresCluster, sources: dict[str, str], fmt: str,
    tmp_path: Path,
) -> None:
    shop = _register(packages, pg, "pkg_shop")
    notes = _register(packages, pg, "pkg_notes", compression="none")
    packages.backup(shop)  # an older backup of shop: the package takes the latest
    backups = {shop: packages.backup(shop), notes: packages.backup(notes)}
    completed_before = _counter(packages, pg, "completed")

    package = packages.create_package(database_ids=[shop, notes], format=fmt)
    assert package["status"] == "completed", package["error"]
    assert package["format"] == fmt and package["trigger"] == "manual"
    assert package["error"] is None and package["missing"] == []
    assert package["backups"] == [{"database_id": d, "backup_id": b["id"]}
                                  for d, b in backups.items()]
    assert package["storage_key"].startswith("_packages/")
    assert _counter(packages, pg, "completed") == completed_before + 1

    members = _unpack(fmt, _download(packages, package))
    manifest = json.loads(members.pop("manifest.json"))
    assert manifest["package_id"] == package["id"]
    assert manifest["created_at"].startswith(package["created_at"][:19])
    assert manifest["missing"] == []
    assert [e["database_id"] for e in manifest["entries"]] == [shop, notes]
    for entry in manifest["entries"]:
        backup = backups[entry["database_id"]]
        assert entry["engine"] == "postgres" and entry["backup_id"] == backup["id"]
        assert entry["file"] == backup["storage_key"].rsplit("/", 1)[-1]
        assert entry["size_bytes"] == backup["size_bytes"]
        assert entry["checksum_md5"] == backup["checksum_md5"]
        assert entry["checksum_sha256"] == backup["checksum_sha256"]
        # The member itself is the stored artifact, byte for byte.
        assert hashlib.md5(members[entry["file"]]).hexdigest() == backup["checksum_md5"]
    assert sorted(members) == sorted(e["file"] for e in manifest["entries"])

    # Restore each member; shop's is gzip-compressed, notes' is a plain pg_dump archive.
    for database_id, source in ((shop, "pkg_shop"), (notes, "pkg_notes")):
        data = members[backups[database_id]["storage_key"].rsplit("/", 1)[-1]]
        dump = tmp_path / f"{source}.dump"
        dump.write_bytes(gzip.decompress(data) if database_id == shop else data)
        # Unique per run: the suite runs once per storage backend against one cluster.
        target = f"restored_{source}_{fmt.replace('.', '_')}_{uuid.uuid4().hex[:6]}"
        _pg_restore(pg, dump, target)
        assert pg.psql(sources[source], target) == pg.psql(sources[source], source)


def test_default_package_takes_package_true_databases_and_lists_missing(
    packages: PackageStack, pg: PostgresCluster, sources: dict[str, str],
) -> None:
    included = _register(packages, pg, "pkg_notes", package=True)
    no_backup = _register(packages, pg, "pkg_shop", package=True)
    not_packaged = _register(packages, pg, "pkg_shop")
    packages.backup(included)
    packages.backup(not_packaged)

    response = packages.client.post("/packages/create")  # no body at all
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending" and response.json()["format"] == "zip"
    package = packages.wait_package(response.json()["id"])
    assert package["status"] == "completed", package["error"]
    assert [b["database_id"] for b in package["backups"]] == [included]
    assert package["missing"] == [no_backup]

    members = _unpack("zip", _download(packages, package))
    manifest = json.loads(members["manifest.json"])
    assert manifest["missing"] == [no_backup]
    assert [e["database_id"] for e in manifest["entries"]] == [included]


def test_package_with_nothing_in_it_fails_with_that_reason(
    packages: PackageStack, pg: PostgresCluster,
) -> None:
    empty = _register(packages, pg, "pkg_notes")
    failed_before = _counter(packages, pg, "failed")
    package = packages.create_package(database_ids=[empty])
    assert package["status"] == "failed"
    assert package["error"] == f"nothing to package: no completed backup of {empty}"
    assert package["missing"] == [empty]
    assert package["storage_key"] is None and package["checksum_md5"] is None
    assert _counter(packages, pg, "failed") == failed_before + 1
    download = packages.client.get(f"/packages/{package['id']}/download")
    assert download.status_code == 409 and "failed" in download.json()["message"]


def test_artifact_deleted_behind_our_back_fails_the_package_naming_it(
    packages: PackageStack, pg: PostgresCluster, sources: dict[str, str],
) -> None:
    kept = _register(packages, pg, "pkg_notes")
    lost = _register(packages, pg, "pkg_shop")
    packages.backup(kept)
    gone = packages.backup(lost)
    packages.storage.delete(gone["storage_key"])
    before = set(packages.storage.list("_packages/"))

    package = packages.create_package(database_ids=[kept, lost], format="tar.gz")
    assert package["status"] == "failed"
    assert gone["storage_key"] in package["error"] and gone["id"] in package["error"]
    assert "missing from storage" in package["error"]
    assert package["storage_key"] is None
    assert set(packages.storage.list("_packages/")) == before  # nothing left behind


def test_unknown_and_empty_database_ids_are_refused(packages: PackageStack,
                                                    pg: PostgresCluster) -> None:
    known = _register(packages, pg, "pkg_notes")
    listed_before = packages.client.get("/packages").headers["X-Pagination"]

    unknown = packages.client.post("/packages/create",
                                   json={"database_ids": [known, "ghost-db", "nope"]})
    assert unknown.status_code == 404
    assert "'ghost-db'" in unknown.json()["message"] and "'nope'" in unknown.json()["message"]
    assert known not in unknown.json()["message"]

    for body, field in (({"database_ids": []}, "database_ids"),
                        ({"database_ids": "x"}, "database_ids"),
                        ({"database_ids": ["bad id!"]}, "database_ids"),
                        ({"format": "rar"}, "format"),
                        ({"colour": "red"}, "colour")):
        response = packages.client.post("/packages/create", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["message"].startswith(f"invalid input: {field}")
    # Nothing was recorded for refused requests.
    assert packages.client.get("/packages").headers["X-Pagination"] == listed_before

    for path in ("/packages/00000000-0000-0000-0000-000000000000", "/packages/nope",
                 "/packages/nope/download", "/packages/%00"):
        assert packages.client.get(path).status_code == 404
    assert packages.client.delete("/packages/nope").status_code == 404


def test_delete_package_removes_its_file(packages: PackageStack, pg: PostgresCluster,
                                         sources: dict[str, str]) -> None:
    db = _register(packages, pg, "pkg_notes")
    packages.backup(db)
    package = packages.create_package(database_ids=[db])
    assert package["status"] == "completed", package["error"]
    assert packages.storage.exists(package["storage_key"])
    assert packages.client.delete(f"/packages/{package['id']}").status_code == 204
    assert not packages.storage.exists(package["storage_key"])
    assert not packages.storage.exists(package["storage_key"] + ".json")
    assert packages.client.get(f"/packages/{package['id']}").status_code == 404


def test_retention_keeps_max_packages_and_removes_old_ones(
    packages: PackageStack, pg: PostgresCluster, sources: dict[str, str],
) -> None:
    db = _register(packages, pg, "pkg_notes")
    packages.backup(db)
    made = [packages.create_package(database_ids=[db]) for _ in range(MAX_PACKAGES + 1)]
    assert all(p["status"] == "completed" for p in made)

    completed = packages.client.get("/packages", params={"status": "completed",
                                                         "page_size": 50}).json()
    assert [p["id"] for p in completed] == [p["id"] for p in reversed(made[1:])]
    assert packages.client.get(f"/packages/{made[0]['id']}").status_code == 404
    assert not packages.storage.exists(made[0]["storage_key"])

    # Age: with room under max_packages, a package created longer ago than
    # retention_days still goes at the next run.
    assert packages.client.delete(f"/packages/{made[1]['id']}").status_code == 204
    meta = packages.stack.env["DATABASE_URL"].rsplit("/", 1)[-1]
    pg.psql(f"UPDATE packages SET created_at = now() - interval '{RETENTION_DAYS + 1} days' "
            f"WHERE id = '{made[2]['id']}'", meta)
    newest = packages.create_package(database_ids=[db])
    assert newest["status"] == "completed"
    assert packages.client.get(f"/packages/{made[2]['id']}").status_code == 404
    assert not packages.storage.exists(made[2]["storage_key"])
    remaining = {p["id"] for p in packages.client.get(
        "/packages", params={"status": "completed"}).json()}
    assert remaining == {made[3]["id"], newest["id"]}


def test_artifact_altered_behind_our_back_fails_mid_stream_and_leaves_nothing(
    packages: PackageStack, pg: PostgresCluster, sources: dict[str, str],
) -> None:
    first = _register(packages, pg, "pkg_shop")
    altered = _register(packages, pg, "pkg_notes")
    packages.backup(first)
    backup = packages.backup(altered)
    # Same size, one byte flipped: only the MD5 check while copying can notice.
    data = bytearray(packages.storage.read_bytes(backup["storage_key"]))
    data[len(data) // 2] ^= 0xFF
    packages.storage.put_bytes(backup["storage_key"], bytes(data))
    before = set(packages.storage.list("_packages/"))

    for fmt in ("zip", "tar.gz"):
        package = packages.create_package(database_ids=[first, altered], format=fmt)
        assert package["status"] == "failed"
        assert package["error"] == (
            f"artifact {backup['storage_key']} of backup {backup['id']} has MD5 "
            f"{hashlib.md5(data).hexdigest()}, {backup['checksum_md5']} recorded")
        assert set(packages.storage.list("_packages/")) == before


def test_openapi_documents_the_package_endpoints(packages: PackageStack) -> None:
    paths = packages.client.get("/openapi.json").json()["paths"]
    for path, methods in (("/packages", {"get"}), ("/packages/create", {"post"}),
                          ("/packages/{package_id}", {"get", "delete"}),
                          ("/packages/{package_id}/download", {"get"})):
        assert methods <= set(paths[path]), path


def test_running_package_is_kept_unless_its_worker_is_long_gone(
    packages: PackageStack, pg: PostgresCluster,
) -> None:
    db = _register(packages, pg, "pkg_notes")
    package = packages.create_package(database_ids=[db])  # fails (no backup): no file
    meta = packages.stack.env["DATABASE_URL"].rsplit("/", 1)[-1]
    # As if a worker were building it now, then as if that worker died a day ago
    # (past the hard time limit of global.backup_time_limit, 6 h by default).
    pg.psql(f"UPDATE packages SET status = 'running', started_at = now() "
            f"WHERE id = '{package['id']}'", meta)
    busy = packages.client.delete(f"/packages/{package['id']}")
    assert busy.status_code == 409 and "running" in busy.json()["message"]
    pg.psql(f"UPDATE packages SET started_at = now() - interval '1 day' "
            f"WHERE id = '{package['id']}'", meta)
    assert packages.client.delete(f"/packages/{package['id']}").status_code == 204
    assert packages.client.get(f"/packages/{package['id']}").status_code == 404
