"""/backups through HTTP: unknown databases, filters, downloads of unfinished backups."""

from __future__ import annotations

from tests.conftest import Client
from tests.services import PostgresCluster


def test_backup_of_unknown_database_is_404(api: Client) -> None:
    response = api.post("/backups", json={"database_id": "ghost"})
    assert response.status_code == 404
    assert "ghost" in response.json()["message"]


def test_unknown_backup_is_404(api: Client) -> None:
    for response in (api.get("/backups/00000000-0000-0000-0000-000000000000"),
                     api.delete("/backups/nope"), api.get("/backups/nope/download")):
        assert response.status_code == 404


def test_filters_and_download_of_failed_backup(api: Client, pg: PostgresCluster) -> None:
    db_id = api.register_postgres(pg, "postgres", password="wrong-password-123")
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "failed"
    listed = api.get("/backups", params={"database_id": db_id, "status": "failed"}).json()
    assert [b["id"] for b in listed] == [backup["id"]]
    assert api.get("/backups", params={"database_id": db_id, "status": "completed"}).json() == []
    download = api.get(f"/backups/{backup['id']}/download")
    assert download.status_code == 409
    assert "failed" in download.json()["message"]


def test_health_and_ready(api: Client) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    ready = api.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"metadata_db": "ok", "broker": "ok", "storage": "ok"}


def test_openapi_and_docs(api: Client) -> None:
    spec = api.get("/openapi.json").json()
    for path in ("/databases", "/databases/{database_id}", "/backups", "/backups/{backup_id}",
                 "/backups/{backup_id}/download", "/health", "/ready"):
        assert path in spec["paths"]
    assert api.get("/docs").status_code == 200
