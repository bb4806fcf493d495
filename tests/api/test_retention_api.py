"""POST /retention/run deletes only when the body says {"dry_run": false}."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Client, Stack
from tests.services import PostgresCluster
from tests.worker.beat.helpers import meta_sql


@pytest.fixture
def expired(api: Client, stack: Stack, pg: PostgresCluster) -> dict[str, Any]:
    """A failed backup ten days old of a database that keeps failures seven days."""
    db_id = api.register_postgres(pg, "postgres", password="wrong-password-123",
                                  retention_days=7)
    backup = api.wait_backup(api.post("/backups", json={"database_id": db_id}).json()["id"])
    assert backup["status"] == "failed"
    meta_sql(pg, stack, "UPDATE backups SET created_at = created_at - interval '10 days' "
                        f"WHERE id = '{backup['id']}'")
    return backup


def test_no_body_is_a_dry_run(api: Client, expired: dict[str, Any]) -> None:
    response = api.session.post(api.base + "/retention/run", timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dry_run"] is True
    assert expired["id"] in {b["backup_id"] for b in body["backups"]}
    assert api.get(f"/backups/{expired['id']}").status_code == 200


@pytest.mark.parametrize("payload", [{}, {"dry_run": True}])
def test_only_dry_run_false_deletes(api: Client, expired: dict[str, Any],
                                    payload: dict[str, Any]) -> None:
    scoped = {**payload, "database_id": expired["database_id"]}
    preview = api.post("/retention/run", json=scoped)
    assert preview.status_code == 200, preview.text
    assert preview.json()["dry_run"] is True and preview.json()["count"] == 1
    assert api.get(f"/backups/{expired['id']}").status_code == 200

    applied = api.post("/retention/run", json={**scoped, "dry_run": False})
    assert applied.status_code == 200, applied.text
    assert applied.json()["dry_run"] is False and applied.json()["count"] == 1
    assert api.get(f"/backups/{expired['id']}").status_code == 404


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "text/plain"])
def test_a_cross_site_form_post_deletes_nothing(api: Client, expired: dict[str, Any],
                                                content_type: str) -> None:
    # What an HTML <form method=post> on any web page can make a browser send.
    for data in (b"", b"dry_run=false", b'{"dry_run": false}'):
        response = api.session.post(api.base + "/retention/run", data=data, timeout=30,
                                    headers={"Content-Type": content_type})
        assert response.status_code == 415, response.text
    assert api.get(f"/backups/{expired['id']}").status_code == 200
