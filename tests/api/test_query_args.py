"""Query strings: an unknown or misspelled parameter is 422 naming it, never ignored."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Client

LISTS = ["/databases", "/backups", "/packages", "/restores"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("param", ["engine", "database", "Page", "sort"])
def test_unknown_query_parameter_is_422_naming_it(api: Client, path: str, param: str) -> None:
    response = api.get(path, params={param: "x"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert param in body["errors"]["query"]
    assert param in body["message"]


def test_the_reported_typos(api: Client) -> None:
    for params, name in (({"engine": "mongodb"}, "engine"), ({"database": "shop"}, "database")):
        response = api.get("/backups", params=params)
        assert response.status_code == 422, response.text
        assert f"{name}: Unknown field" in response.json()["message"]


@pytest.mark.parametrize("path, filters", [
    ("/databases", {}),
    ("/backups", {"database_id": "shop", "status": "failed"}),
    ("/packages", {"status": "completed"}),
    ("/restores", {"backup_id": str(uuid.uuid4()), "status": "pending"}),
])
def test_filters_and_pagination_still_work(api: Client, path: str,
                                           filters: dict[str, str]) -> None:
    response = api.get(path, params={**filters, "page": 1, "page_size": 5})
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)
    assert api.get(path, params={"page_size": 0}).status_code == 422


def test_a_misspelled_delete_option_deletes_nothing(api: Client) -> None:
    db_id = f"q-{uuid.uuid4().hex[:8]}"
    created = api.post("/databases", json={"id": db_id, "engine": "postgres",
                                           "host": "db.internal", "database_name": "app"})
    assert created.status_code == 201, created.text
    response = api.delete(f"/databases/{db_id}", params={"delete_backup": "true"})
    assert response.status_code == 422
    assert "delete_backup" in response.json()["message"]
    assert api.get(f"/databases/{db_id}").status_code == 200
    assert api.delete(f"/databases/{db_id}", params={"delete_backups": "true"}).status_code == 204
