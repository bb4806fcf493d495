"""Services raise domain errors; the API answers each in flask-smorest's error shape.

In process (Flask's test client, SQLite, local storage) with a broker that refuses
every connection, so the 503, 410 and 502 answers can be provoked for real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.services import ApiContext
from shared.config import load_settings
from shared.models import Backup, utcnow
from shared.storage import LocalStorage
from tests.services import TEST_API_KEY

# Nothing listens on port 1: every send is refused.
CLOSED_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    env = {"BACKUP_API_DATA_DIR": str(tmp_path), "CELERY_BROKER_URL": CLOSED_BROKER,
           "TEST_API_KEY": TEST_API_KEY}
    (tmp_path / "config.yaml").write_text(
        "auth:\n  keys:\n    - {name: tests, scopes: [admin], key: '${TEST_API_KEY}'}\n")
    return create_app(load_settings(str(tmp_path / "config.yaml"), env))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TEST_API_KEY}"
    created = client.post("/databases", json={
        "id": "shop", "engine": "postgres", "host": "127.0.0.1", "database_name": "shop"})
    assert created.status_code == 201, created.json
    return client


def _context(app: Flask) -> ApiContext:
    context: ApiContext = app.extensions["backup_api"]
    return context


def _completed_backup(app: Flask, key: str) -> str:
    with _context(app).db.session() as session:
        backup = Backup(database_id="shop", engine="postgres", status="completed",
                        trigger="manual", created_at=utcnow(), finished_at=utcnow(),
                        compression="gzip", storage="local", storage_key=key, size_bytes=1)
        session.add(backup)
    return backup.id


def _error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json
    return body


def test_a_refused_broker_is_503_and_the_backup_is_recorded_failed(client: FlaskClient) -> None:
    response = client.post("/backups", json={"database_id": "shop"})
    assert response.status_code == 503
    assert _error(response) == {
        "code": 503, "status": "Service Unavailable",
        "message": "the broker is unreachable; the backup was recorded as failed"}
    backups: list[dict[str, Any]] = client.get(
        "/backups", query_string={"database_id": "shop"}).json  # type: ignore[assignment]
    assert [(b["status"], b["error"]) for b in backups] == [
        ("failed", "could not enqueue the backup: the broker is unreachable")]
    # Failed, not pending: the next request is not refused as a duplicate.
    assert client.post("/backups", json={"database_id": "shop"}).status_code == 503


def test_a_missing_artifact_is_410(app: Flask, client: FlaskClient) -> None:
    backup_id = _completed_backup(app, "shop/gone.dump.gz")
    response = client.get(f"/backups/{backup_id}/download")
    assert response.status_code == 410
    assert _error(response) == {
        "code": 410, "status": "Gone",
        "message": f"the file of backup {backup_id} is missing from storage"}


def test_a_storage_failure_is_502_naming_what_failed(app: Flask, client: FlaskClient) -> None:
    backup_id = _completed_backup(app, "shop/stuck.dump.gz")
    storage = _context(app).storage
    assert isinstance(storage, LocalStorage)
    # A non-empty directory where the artifact should be: storage cannot delete it.
    stuck = storage.root / "shop" / "stuck.dump.gz"
    stuck.mkdir(parents=True)
    (stuck / "keep").write_bytes(b"x")
    response = client.delete(f"/backups/{backup_id}")
    assert response.status_code == 502
    body = _error(response)
    assert (body["code"], body["status"]) == (502, "Bad Gateway")
    assert body["message"].startswith("could not delete the artifact: cannot delete ")
    assert client.get(f"/backups/{backup_id}").status_code == 200  # the row stays


def test_not_found_and_conflict_keep_their_shape(client: FlaskClient) -> None:
    assert _error(client.get("/backups/nope")) == {
        "code": 404, "status": "Not Found", "message": "backup 'nope' not found"}
    assert _error(client.post("/databases", json={
        "id": "shop", "engine": "postgres", "host": "h", "database_name": "d"})) == {
        "code": 409, "status": "Conflict", "message": "database 'shop' already exists"}
