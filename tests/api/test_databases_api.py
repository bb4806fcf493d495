"""/databases through HTTP: validation, conflicts, write-only passwords, config-managed rows."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.conftest import Client, Stack


def _body(**overrides: Any) -> dict[str, Any]:
    body = {"id": f"db-{uuid.uuid4().hex[:8]}", "engine": "postgres", "host": "db.internal",
            "port": 5432, "username": "app", "password": "Sup3r-Secret-pw",
            "database_name": "app"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


@pytest.mark.parametrize(("overrides", "field"), [
    ({"engine": "oracle"}, "engine"),
    ({"schedule": "every day at noon"}, "schedule"),
    ({"schedule": "61 * * * *"}, "schedule"),
    ({"port": 70000}, "port"),
    ({"port": 0}, "port"),
    ({"port": "five"}, "port"),
    ({"id": "has spaces"}, "id"),
    ({"id": "-leading-dash"}, "id"),
    ({"id": "x" * 64}, "id"),
    ({"id": "y\n"}, "id"),
    ({"id": "\ny"}, "id"),
    ({"host": ...}, "host"),
    ({"database_name": ...}, "database_name"),
    ({"engine": ...}, "engine"),
    ({"compression": "rar"}, "compression"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"retention_days": -1}, "retention_days"),
    ({"unknown_key": 1}, "unknown_key"),
    ({"options": {"nested": {"a": 1}}}, "options"),
])
def test_invalid_database_is_422_naming_the_field(api: Client, overrides: dict[str, Any],
                                                  field: str) -> None:
    response = api.post("/databases", json=_body(**overrides))
    assert response.status_code == 422, response.text
    payload = response.json()
    assert field in payload["errors"]["json"]
    assert field in payload["message"]


def test_cron_error_names_the_field_and_macros_are_accepted(api: Client) -> None:
    response = api.post("/databases", json=_body(schedule="0 25 * * *"))
    assert response.status_code == 422, response.text
    assert response.json()["errors"]["json"]["schedule"] == ["hour: 25 is out of range 0-23"]
    assert "schedule" in response.json()["message"] and "hour" in response.json()["message"]
    created = api.post("/databases", json=_body(schedule="@daily"))
    assert created.status_code == 201, created.text
    assert created.json()["schedule"] == "@daily"


def test_duplicate_id_is_409(api: Client) -> None:
    body = _body()
    assert api.post("/databases", json=body).status_code == 201
    response = api.post("/databases", json=body)
    assert response.status_code == 409
    assert body["id"] in response.json()["message"]


def test_concurrent_creates_of_one_id_answer_201_once_then_409(api: Client,
                                                               stack: Stack) -> None:
    password = f"Race-{uuid.uuid4().hex}-pw"

    def create(body: dict[str, Any], start: threading.Barrier) -> requests.Response:
        start.wait()  # the three requests leave together
        return requests.post(api.base + "/databases", json=body, timeout=30,
                             headers=api.session.headers)

    for _ in range(4):
        body, start = _body(password=password), threading.Barrier(3)
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(create, body, start) for _ in range(3)]
            responses = [f.result() for f in futures]
        assert sorted(r.status_code for r in responses) == [201, 409, 409], \
            [r.text for r in responses]
        for conflict in (r for r in responses if r.status_code == 409):
            assert body["id"] in conflict.json()["message"]
    # Neither the answers nor the log (a failed INSERT's parameters) show the password.
    assert password not in stack.logs()
    assert all(password not in r.text for r in responses)


def test_password_is_write_only_and_defaults_apply(api: Client) -> None:
    body = _body(port=..., username=None)
    created = api.post("/databases", json=body)
    assert created.status_code == 201
    for payload in (created.json(), api.get(f"/databases/{body['id']}").json()):
        assert "password" not in payload
        assert payload["password_set"] is True
        assert payload["port"] == 5432
        assert payload["managed_by"] == "api"
        # Effective values: the stack's global config.
        assert payload["schedule"] == "0 2 * * *"
        assert payload["compression"] == "gzip"
        assert payload["retention_days"] == 14 and payload["max_backups"] == 10
    assert body["password"] not in created.text


def test_patch_overrides_and_resets(api: Client) -> None:
    body = _body()
    api.post("/databases", json=body)
    patched = api.patch(f"/databases/{body['id']}",
                        {"schedule": "*/5 * * * *", "retention_days": 3, "password": None})
    assert patched.status_code == 200
    assert patched.json()["schedule"] == "*/5 * * * *"
    assert patched.json()["retention_days"] == 3
    assert patched.json()["password_set"] is False
    reset = api.patch(f"/databases/{body['id']}", {"schedule": None})
    assert reset.json()["schedule"] == "0 2 * * *"
    bad = api.patch(f"/databases/{body['id']}", {"port": -4})
    assert bad.status_code == 422 and "port" in bad.json()["message"]
    assert api.patch(f"/databases/{body['id']}", {"id": "renamed"}).status_code == 422


def test_missing_database_is_404(api: Client) -> None:
    assert api.get("/databases/nope").status_code == 404
    assert api.patch("/databases/nope", {"name": "x"}).status_code == 404
    assert api.delete("/databases/nope").status_code == 404


def test_ids_with_a_newline_are_refused_or_absent_never_500(api: Client) -> None:
    for response in (api.get("/databases/y%0A"), api.patch("/databases/y%0A", {"name": "x"}),
                     api.delete("/databases/y%0A"), api.get("/databases/config-managed%0A"),
                     api.get("/backups/00000000-0000-0000-0000-000000000000%0A"),
                     api.get("/backups/00000000-0000-0000-0000-000000000000%0A/download"),
                     api.delete("/backups/00000000-0000-0000-0000-000000000000%0A"),
                     api.get("/packages/00000000-0000-0000-0000-000000000000%0A/download"),
                     api.post("/backups/00000000-0000-0000-0000-000000000000%0A/verify")):
        assert response.status_code == 404, (response.url, response.text)
    for method, path, body, field in (
        ("post", "/backups", {"database_id": "y\n"}, "database_id"),
        ("post", "/retention/run", {"database_id": "y\n"}, "database_id"),
        ("post", "/packages/create", {"database_ids": ["y\n"]}, "database_ids"),
        ("post", "/backups/00000000-0000-0000-0000-000000000000/restore",
         {"target_database_id": "y\n"}, "target_database_id"),
        ("get", "/backups?database_id=y%0A", None, "database_id"),
    ):
        response = api.session.request(method, api.base + path, json=body, timeout=30)
        assert response.status_code == 422, (path, response.text)
        assert field in response.json()["message"]


def test_config_managed_database_refuses_patch_and_delete(api: Client) -> None:
    for response in (api.patch("/databases/config-managed", {"name": "x"}),
                     api.delete("/databases/config-managed")):
        assert response.status_code == 409
        assert "config.yaml" in response.json()["message"]
    assert api.get("/databases/config-managed").status_code == 200


def test_delete_database(api: Client) -> None:
    body = _body()
    api.post("/databases", json=body)
    assert api.delete(f"/databases/{body['id']}").status_code == 204
    assert api.get(f"/databases/{body['id']}").status_code == 404


def test_list_is_paginated_newest_first(api: Client) -> None:
    ids = [_body()["id"] for _ in range(3)]
    for db_id in ids:
        api.post("/databases", json=_body(id=db_id))
    page = api.get("/databases", params={"page": 1, "page_size": 2})
    assert page.status_code == 200
    assert len(page.json()) == 2
    assert [d["id"] for d in page.json()] == [ids[2], ids[1]]
    assert '"total"' in page.headers["X-Pagination"]
    assert api.get("/databases", params={"page_size": 0}).status_code == 422


@pytest.mark.parametrize(("method", "path", "payload"), [
    ("post", "/databases", "not json"),
    ("post", "/databases", []),
    ("post", "/databases", None),
    ("post", "/backups", {"database_id": 12}),
    ("post", "/backups", {"database_id": ""}),
    ("post", "/backups", {}),
    ("get", "/backups?status=done", None),
    ("get", "/backups?page=abc", None),
    ("get", "/backups/%00", None),
    ("get", "/nowhere", None),
    ("delete", "/databases", None),
    ("patch", "/databases/config-managed", "[]"),
])
def test_bad_requests_get_json_4xx_never_500(api: Client, method: str, path: str,
                                             payload: Any) -> None:
    if isinstance(payload, str):
        response = api.session.request(method, api.base + path, data=payload,
                                       headers={"Content-Type": "application/json"})
    else:
        response = api.session.request(method, api.base + path, json=payload)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["message"]
