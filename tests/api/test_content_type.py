"""Writes take JSON only: a form, text or untyped body is 415, never read as "no body"."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from tests.conftest import Client

FORM_TYPES = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
              "text/plain"]


def _database() -> dict[str, object]:
    return {"id": f"ct-{uuid.uuid4().hex[:8]}", "engine": "postgres", "host": "db.internal",
            "database_name": "app"}


def _assert_415(response: requests.Response) -> None:
    assert response.status_code == 415, response.text
    body = response.json()
    assert body["code"] == 415 and body["status"] == "Unsupported Media Type"
    assert "Content-Type: application/json" in body["message"]


@pytest.mark.parametrize("content_type", [*FORM_TYPES, "application/xml", None])
def test_a_body_that_is_not_declared_json_is_415(api: Client, content_type: str | None) -> None:
    body = _database()
    headers = {"Content-Type": content_type} if content_type else {}
    # requests sends no Content-Type at all for bytes data without one.
    response = api.session.post(api.base + "/databases", data=json.dumps(body).encode(),
                                headers=headers, timeout=30)
    _assert_415(response)
    assert api.get(f"/databases/{body['id']}").status_code == 404


@pytest.mark.parametrize("method, path", [
    ("post", "/backups"), ("post", "/packages/create"), ("post", "/retention/run"),
    ("patch", "/databases/config-managed"),
    ("post", "/backups/00000000-0000-0000-0000-000000000000/verify"),
    ("post", "/backups/00000000-0000-0000-0000-000000000000/restore"),
])
@pytest.mark.parametrize("content_type", FORM_TYPES)
def test_every_write_refuses_a_form_even_an_empty_one(api: Client, method: str, path: str,
                                                      content_type: str) -> None:
    for data in (b"dry_run=false", b""):
        response = api.session.request(method, api.base + path, data=data, timeout=30,
                                       headers={"Content-Type": content_type})
        _assert_415(response)


def test_json_with_a_charset_is_accepted(api: Client) -> None:
    body = _database()
    response = api.session.post(api.base + "/databases", data=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json; charset=utf-8"},
                                timeout=30)
    assert response.status_code == 201, response.text


def test_no_body_and_no_content_type_is_an_empty_body(api: Client) -> None:
    # Where the body is optional the request goes through; where it is required the
    # answer names the missing fields.
    ghost = "/backups/00000000-0000-0000-0000-000000000000/verify"
    assert api.session.post(api.base + ghost, timeout=30).status_code == 404
    missing = api.session.post(api.base + "/databases", timeout=30)
    assert missing.status_code == 422, missing.text
    assert "id" in missing.json()["errors"]["json"]


def test_unknown_paths_stay_404_whatever_the_content_type(api: Client) -> None:
    response = api.session.post(api.base + "/nowhere", data=b"a=b", timeout=30,
                                headers={"Content-Type": FORM_TYPES[0]})
    assert response.status_code == 404
