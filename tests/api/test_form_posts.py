"""A cross-site form post: a page the operator visits makes the browser post to the API.

An HTML form (or a ``fetch`` without a preflight) on any web site can send only
``application/x-www-form-urlencoded``, ``multipart/form-data`` or ``text/plain``, and
only with GET or POST. Every write the OpenAPI document lists, so a new endpoint
cannot be forgotten, must refuse each of those with 415 and change nothing, with or
without a body, even from a browser holding the operator's key.
"""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import Client

FORMS = {
    "application/x-www-form-urlencoded": b"dry_run=false&database_id=config-managed",
    "multipart/form-data; boundary=x": (b"--x\r\nContent-Disposition: form-data; "
                                        b"name=\"dry_run\"\r\n\r\nfalse\r\n--x--\r\n"),
    "text/plain": b'{"dry_run": false, "database_id": "config-managed"}',
}
WRITES = ("post", "put", "patch")


def _spec(api: Client) -> dict[str, Any]:
    spec: dict[str, Any] = api.get("/openapi.json").json()
    return spec


def _operations(spec: dict[str, Any], methods: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(method, concrete path, documented path) of every operation with one of ``methods``."""
    out = []
    for path, item in spec["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "config-managed", path)
        concrete = concrete.replace("/backups/config-managed",
                                    "/backups/00000000-0000-0000-0000-000000000000")
        out += [(method, concrete, path) for method in item if method in methods]
    return out


def test_every_write_in_the_openapi_document_refuses_a_cross_site_form(api: Client) -> None:
    writes = _operations(_spec(api), WRITES)
    # The writes known today are all there (a sanity check of the generation itself).
    assert {(m, p) for m, _, p in writes} >= {
        ("post", "/databases"), ("patch", "/databases/{database_id}"), ("post", "/backups"),
        ("post", "/backups/{backup_id}/verify"), ("post", "/backups/{backup_id}/restore"),
        ("post", "/packages/create"), ("post", "/retention/run")}
    before = {path: api.get(path).json() for path in ("/backups", "/packages", "/restores")}
    for method, path, documented in writes:
        for content_type, body in FORMS.items():
            for data in (body, b""):
                response = api.session.request(
                    method, api.base + path, data=data, timeout=30,
                    headers={"Content-Type": content_type, "Origin": "https://evil.example"})
                assert response.status_code == 415, (method, documented, content_type,
                                                     response.status_code, response.text)
                assert "Content-Type: application/json" in response.json()["message"]
    # Nothing was created, changed or run.
    assert {path: api.get(path).json() for path in before} == before
    assert api.get("/databases/config-managed").json()["managed_by"] == "config"


def test_no_delete_takes_a_body(api: Client) -> None:
    # A browser cannot send DELETE cross-site without a preflight, which we never grant;
    # and no DELETE reads a body a form could fill, so none needs the Content-Type rule.
    deletes = _operations(_spec(api), ("delete",))
    assert deletes
    spec = _spec(api)
    for method, _, documented in deletes:
        assert "requestBody" not in spec["paths"][documented][method], documented
