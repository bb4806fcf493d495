"""Attacks on access control; each must fail. Keys are made with the real CLI.

The operations come from the live ``/openapi.json``, so an endpoint added later is
attacked too, and fails here until its scope is written in ``EXPECTED``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.conftest import Client, Stack, start_stack
from tests.services import (
    TEST_API_KEY,
    PostgresCluster,
    Redis,
    backup_api_cli,
    create_key,
)

# The scope each operation needs (None: public). A new operation must be added here.
EXPECTED: dict[tuple[str, str], str | None] = {
    ("GET", "/databases"): "read",
    ("POST", "/databases"): "write",
    ("GET", "/databases/{database_id}"): "read",
    ("PATCH", "/databases/{database_id}"): "write",
    ("DELETE", "/databases/{database_id}"): "admin",
    ("GET", "/backups"): "read",
    ("POST", "/backups"): "write",
    ("GET", "/backups/{backup_id}"): "read",
    ("DELETE", "/backups/{backup_id}"): "admin",
    ("GET", "/backups/{backup_id}/download"): "read",
    ("GET", "/backups/{backup_id}/globals"): "admin",
    ("POST", "/backups/{backup_id}/verify"): "write",
    ("POST", "/backups/{backup_id}/restore"): "admin",
    ("POST", "/backups/{backup_id}/cancel"): "write",
    ("POST", "/packages/{package_id}/cancel"): "write",
    ("POST", "/restores/{restore_id}/cancel"): "admin",
    ("GET", "/restores"): "read",
    ("GET", "/restores/{restore_id}"): "read",
    ("GET", "/packages"): "read",
    ("POST", "/packages/create"): "write",
    ("GET", "/packages/{package_id}"): "read",
    ("DELETE", "/packages/{package_id}"): "admin",
    ("GET", "/packages/{package_id}/download"): "read",
    ("POST", "/retention/run"): "admin",
    ("GET", "/health"): None,
    ("GET", "/ready"): None,
}
# Keys too small for each scope, by the key's scope (admin holds every scope).
TOO_SMALL = {"read": ["metrics"], "write": ["read", "metrics"],
             "admin": ["write", "read", "metrics"], "metrics": ["read", "write"]}
METHODS = ("get", "post", "put", "patch", "delete")


@dataclass
class AuthStack:
    stack: Stack
    keys: dict[str, str]  # scope (or "revoked") -> key
    backup_id: str  # a completed backup

    def client(self, key: str | None) -> Client:
        return Client(self.stack.client.base, key=key)


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory, pg: PostgresCluster,
         redis: Redis) -> Iterator[AuthStack]:
    stack = start_stack(tmp_path_factory.mktemp("auth"), pg, redis)
    try:
        keys = {scope: create_key(stack.env, f"attack-{scope}", scope)
                for scope in ("read", "write", "metrics")}
        keys["admin"] = TEST_API_KEY  # the stack's own key, declared in its config
        keys["revoked"] = create_key(stack.env, "attack-revoked", "admin")
        revoked = backup_api_cli(stack.env, "keys", "revoke", "attack-revoked")
        assert revoked.returncode == 0, revoked.stderr
        backup = stack.client.post("/backups", json={"database_id": "config-managed"}).json()
        done = stack.client.wait_backup(backup["id"])
        assert done["status"] == "completed", done["error"]
        yield AuthStack(stack, keys, done["id"])
    finally:
        for process in [stack.api, *stack.workers]:
            process.stop()


def _operations(client: Client) -> list[tuple[str, str]]:
    spec = Client(client.base, key=None).get("/openapi.json").json()
    return sorted((method.upper(), path) for path, item in spec["paths"].items()
                  for method in item if method in METHODS)


def _call(client: Client, method: str, path: str, **kw: Any) -> requests.Response:
    # Ids that name nothing: a request let through answers 404/422, and changes nothing.
    concrete = re.sub(r"\{database_id\}", "no-such-db", path)
    concrete = re.sub(r"\{\w+_id\}", str(uuid.uuid4()), concrete)
    if method in ("POST", "PATCH", "PUT"):
        kw.setdefault("json", {})
    return client.session.request(method, client.base + concrete, timeout=30, **kw)


def _assert_401(response: requests.Response, what: str) -> None:
    assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["code"] == 401 and body["status"] == "Unauthorized" and body["message"], body


def test_every_operation_of_the_document_has_an_expected_scope(auth: AuthStack) -> None:
    unknown = set(_operations(auth.stack.client)) - set(EXPECTED)
    assert not unknown, f"classify these operations in EXPECTED: {sorted(unknown)}"


@pytest.mark.parametrize("credentials", [
    None, "Bearer ", "Bearer not-a-key", "Bearer bak_" + "A" * 43, "Basic YWRtaW46YWRtaW4=",
    "Token {admin}", "Bearer {admin}x", "Bearer {admin_prefix}", "Bearer {admin_hash}",
    "Bearer {revoked}",
], ids=["none", "empty", "garbage", "well-formed", "basic", "other-scheme", "near-miss",
        "prefix", "stored-hash", "revoked"])
def test_every_operation_refuses_a_missing_bad_or_revoked_key(
        auth: AuthStack, credentials: str | None) -> None:
    admin = auth.keys["admin"]
    headers = {}
    if credentials is not None:
        headers["Authorization"] = credentials.format(
            admin=admin, admin_prefix=admin[:8], revoked=auth.keys["revoked"],
            admin_hash=hashlib.sha256(admin.encode()).hexdigest())
    anonymous = auth.client(None)
    for method, path in _operations(auth.stack.client):
        response = _call(anonymous, method, path, headers=headers)
        if EXPECTED.get((method, path), "read") is None:
            assert response.status_code in (200, 503), (method, path, response.text)
        else:
            _assert_401(response, f"{method} {path}")
    _assert_401(anonymous.get("/metrics", headers=headers), "GET /metrics")


def test_a_key_with_too_small_a_scope_is_403_and_the_right_one_passes(auth: AuthStack) -> None:
    failures = []
    for method, path in _operations(auth.stack.client):
        needed = EXPECTED.get((method, path))
        if needed is None:
            continue
        for scope in TOO_SMALL[needed]:
            response = _call(auth.client(auth.keys[scope]), method, path)
            if response.status_code != 403 or needed not in response.json()["message"]:
                failures.append(f"{scope} key, {method} {path}: {response.status_code}")
        for scope in ("admin", needed):
            response = _call(auth.client(auth.keys[scope]), method, path)
            if response.status_code in (401, 403):
                failures.append(f"{scope} key refused on {method} {path}: {response.text}")
    assert not failures, "\n".join(failures)


def test_read_downloads_and_metrics_scrapes_and_nothing_more(auth: AuthStack) -> None:
    reader = auth.client(auth.keys["read"])
    download = reader.get(f"/backups/{auth.backup_id}/download")
    assert download.status_code == 200
    assert hashlib.md5(download.content).hexdigest() == \
        reader.get(f"/backups/{auth.backup_id}").json()["checksum_md5"]
    assert reader.get("/metrics").status_code == 403

    scraper = auth.client(auth.keys["metrics"])
    metrics = scraper.get("/metrics")
    assert metrics.status_code == 200 and "backup_api_backups_total" in metrics.text
    assert scraper.get(f"/backups/{auth.backup_id}/download").status_code == 403
    assert scraper.get("/databases").status_code == 403
    assert auth.client(auth.keys["write"]).get("/metrics").status_code == 403
    assert auth.client(auth.keys["admin"]).get("/metrics").status_code == 200


def test_without_a_key_nothing_tells_whether_a_resource_exists(auth: AuthStack) -> None:
    anonymous = auth.client(None)
    answers = {
        (response.status_code, response.text)
        for response in (
            anonymous.get(f"/backups/{auth.backup_id}"),  # exists
            anonymous.get(f"/backups/{uuid.uuid4()}"),  # does not
            anonymous.get(f"/backups/{auth.backup_id}/download"),
            anonymous.get("/databases/config-managed"),
            anonymous.get("/databases/no-such-db"),
            anonymous.delete(f"/backups/{auth.backup_id}"),
            anonymous.get("/no/such/path"),  # no route at all
            anonymous.delete("/retention/run"),  # a route, not this method
            anonymous.post("/databases", data="id=x",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}),
            anonymous.get("/static/anything"),
        )}
    assert len(answers) == 1, answers
    status, _ = answers.pop()
    assert status == 401
    # With a key, the same requests tell the truth.
    reader = auth.client(auth.keys["read"])
    assert reader.get(f"/backups/{auth.backup_id}").status_code == 200
    assert reader.get(f"/backups/{uuid.uuid4()}").status_code == 404
    assert reader.get("/no/such/path").status_code == 404


def test_a_revoked_key_stops_at_once(auth: AuthStack) -> None:
    key = create_key(auth.stack.env, "attack-soon-revoked", "read")
    client = auth.client(key)
    assert client.get("/databases").status_code == 200
    assert backup_api_cli(auth.stack.env, "keys", "revoke", "attack-soon-revoked").returncode == 0
    _assert_401(client.get("/databases"), "a revoked key")


def test_probes_answer_without_a_key(auth: AuthStack) -> None:
    anonymous = auth.client(None).get("/ready")
    assert anonymous.status_code == 200
    assert anonymous.json()["checks"] == {"metadata_db": "ok", "broker": "ok", "storage": "ok"}
    assert auth.client(None).get("/health").json() == {"status": "ok"}
    # A bad key on a public endpoint changes nothing (and costs no metadata DB lookup).
    assert auth.client("bad").get("/health").status_code == 200


def test_the_document_declares_the_bearer_scheme(auth: AuthStack) -> None:
    spec = auth.client(None).get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert spec["security"] == [{"bearerAuth": []}]
    public = {(method.upper(), path) for path, item in spec["paths"].items()
              for method, op in item.items() if method in METHODS and op.get("security") == []}
    assert public == {("GET", "/health"), ("GET", "/ready")}
    # Swagger UI loads without a key, so its Authorize button can take one.
    assert auth.client(None).get("/docs").status_code == 200
    assert auth.client(None).get("/", allow_redirects=False).status_code == 302


def test_each_key_records_its_last_use(auth: AuthStack) -> None:
    def listed() -> dict[str, Any]:
        result = backup_api_cli(auth.stack.env, "keys", "list", "--json")
        assert result.returncode == 0, result.stderr
        return {key["name"]: key for key in json.loads(result.stdout)}

    key = create_key(auth.stack.env, "attack-last-use", "read")
    assert listed()["attack-last-use"]["last_used_at"] is None
    assert auth.client(key).get("/databases").status_code == 200
    keys = listed()
    assert keys["attack-last-use"]["last_used_at"] is not None
    assert keys["tests"]["managed_by"] == "config"
