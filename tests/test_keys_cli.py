"""API keys from the command line, and how `run` and `api` start with (or without) keys."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from pathlib import Path

import requests

from tests.conftest import Client
from tests.services import (
    PRINTED_KEY,
    TEST_SECRET_KEY,
    PostgresCluster,
    Process,
    backup_api_cli,
    free_port,
    printed_key,
    wait_for,
    wait_http,
)

KEY = re.compile(r"bak_[A-Za-z0-9_-]{43}")


def _embedded_env(tmp_path: Path, config: str = "") -> dict[str, str]:
    (tmp_path / "config.yaml").write_text(config)
    return {"BACKUP_API_CONFIG": str(tmp_path / "config.yaml"),
            "BACKUP_API_DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": "", "CELERY_BROKER_URL": ""}


def test_keys_are_shown_once_listed_without_secret_and_revoked(tmp_path: Path,
                                                               pg: PostgresCluster) -> None:
    meta = f"meta_{uuid.uuid4().hex[:8]}"
    pg.create_database(meta)
    env = {**_embedded_env(tmp_path), "DATABASE_URL": pg.url(meta),
           "BACKUP_API_SECRET_KEY": TEST_SECRET_KEY}

    created = backup_api_cli(env, "keys", "create", "--scope", "read,write", "--name", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    # stdout is the key alone (KEY=$(backup-api keys create …)); the note goes to stderr.
    assert KEY.fullmatch(key) and created.stdout == key + "\n", created.stdout
    assert "shown this once" in created.stderr and key not in created.stderr

    table = backup_api_cli(env, "keys", "list")
    listed = backup_api_cli(env, "keys", "list", "--json")
    assert table.returncode == listed.returncode == 0, table.stderr + listed.stderr
    for output in (table.stdout + table.stderr, listed.stdout + listed.stderr):
        assert key not in output and key[8:16] not in output
    assert re.search(rf"^ci\s+{re.escape(key[:8])}\s+read,write\s+cli\s", table.stdout, re.M)
    [entry] = json.loads(listed.stdout)
    assert entry == {"name": "ci", "prefix": key[:8], "scopes": ["read", "write"],
                     "managed_by": "cli", "created_at": entry["created_at"],
                     "last_used_at": None, "revoked_at": None}

    # The metadata DB holds the SHA-256 and the shown prefix, never the key.
    stored = pg.psql("SELECT * FROM api_keys", meta)
    assert key not in stored and key[8:] not in stored
    assert hashlib.sha256(key.encode()).hexdigest() in stored

    again = backup_api_cli(env, "keys", "create", "--scope", "admin", "--name", "ci")
    assert again.returncode == 1 and "a key named 'ci' exists" in again.stderr
    bad = backup_api_cli(env, "keys", "create", "--scope", "read,root", "--name", "x")
    assert bad.returncode == 1 and "unknown scope root" in bad.stderr

    revoked = backup_api_cli(env, "keys", "revoke", "ci")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert json.loads(backup_api_cli(env, "keys", "list", "--json").stdout)[0]["revoked_at"]
    missing = backup_api_cli(env, "keys", "revoke", "nobody")
    assert missing.returncode == 1 and "no API key named 'nobody'" in missing.stderr


def test_run_prints_a_working_admin_key_on_its_first_start_only(tmp_path: Path) -> None:
    env = _embedded_env(tmp_path)
    port = free_port()
    first = Process("run", ["run", "--port", str(port)], env, tmp_path / "run1.log").start()
    try:
        key = printed_key(first)
        wait_http(f"http://127.0.0.1:{port}/health")
        admin = Client(f"http://127.0.0.1:{port}", key=key)
        assert admin.get("/databases").status_code == 200
        assert admin.delete("/databases/nothing-here").status_code == 404  # admin, not 403
        assert admin.post("/retention/run").status_code == 200
        assert Client(admin.base, key=None).get("/databases").status_code == 401
    finally:
        first.stop()
    log = first.log()
    # Printed clearly, before the address line, and only once.
    assert log.index(key) < log.index("Backup API on http://127.0.0.1")
    assert len(PRINTED_KEY.findall(log)) == 1

    second = Process("run", ["run", "--port", str(port)], env, tmp_path / "run2.log").start()
    try:
        wait_for(lambda: "Backup API on" in second.log(), 60, "the second start")
        wait_http(f"http://127.0.0.1:{port}/health")
        assert Client(f"http://127.0.0.1:{port}", key=key).get("/databases").status_code == 200
    finally:
        second.stop()
    assert "API keys: 1 active (backup-api keys list)" in second.log()
    assert not KEY.search(second.log()), "a second start printed a key"


def test_api_makes_no_key_says_how_and_keeps_ready_details_for_keys(tmp_path: Path) -> None:
    # Storage that cannot work, so /ready has a failure with details (the path) to hide.
    env = _embedded_env(tmp_path, "storage:\n  type: local\n  path: /dev/null/backups\n"
                                  "auth:\n  metrics_public: true\n")
    port = free_port()
    api = Process("api", ["api", "--host", "127.0.0.1", "--port", str(port)], env,
                  tmp_path / "api.log").start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health")
        assert "backup-api keys create --scope admin" in api.log()
        assert json.loads(backup_api_cli(env, "keys", "list", "--json").stdout) == []
        anonymous = Client(base, key=None)
        assert anonymous.get("/databases").status_code == 401
        # metrics_public opens /metrics, and only it.
        assert anonymous.get("/metrics").status_code == 200
        ready = anonymous.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["storage"] == "failed"
        assert "/dev/null" not in ready.text

        made = backup_api_cli(env, "keys", "create", "--scope", "metrics", "--name", "probe")
        assert made.returncode == 0, made.stderr
        detailed = Client(base, key=made.stdout.strip()).get("/ready")
        assert detailed.status_code == 503 and "/dev/null/backups" in detailed.text
        assert "/dev/null/backups" in api.log()  # the anonymous probe logged the reason
    finally:
        api.stop()


def test_auth_disabled_answers_without_keys_and_warns_at_every_start(tmp_path: Path) -> None:
    env = _embedded_env(tmp_path, "auth:\n  disabled: true\n")
    port = free_port()
    warning = "auth.disabled is true: the API answers every request without a key"
    for start in (1, 2):
        api = Process("api", ["api", "--host", "127.0.0.1", "--port", str(port)], env,
                      tmp_path / "api.log").start()
        try:
            wait_http(f"http://127.0.0.1:{port}/health")
            assert requests.get(f"http://127.0.0.1:{port}/databases", timeout=10).ok
        finally:
            api.stop()
        warnings = [json.loads(line) for line in api.log().splitlines()
                    if warning in line]
        assert len(warnings) == start and warnings[-1]["level"] == "warning"


def test_check_config_names_config_keys_without_their_secret(tmp_path: Path) -> None:
    secret = "cfg-" + "s" * 40
    env = {**_embedded_env(tmp_path, "auth:\n  keys:\n    - name: ci\n      scopes: [read]\n"
                                     "      key: ${CI_KEY}\n"), "CI_KEY": secret}
    result = backup_api_cli(env, "check-config")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["auth"]["keys"] == [{"name": "ci", "scopes": ["read"]}]
    assert secret not in result.stdout + result.stderr
