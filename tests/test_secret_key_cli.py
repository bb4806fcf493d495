"""The secret key of stored passwords, through the real CLI and processes (issue 13).

Rotation round trip: a database registered through the API with key A; `secrets rotate`
with `B,A`; the roles started with B alone still take a backup (the password opens),
and with A alone they refuse to start. A wrong, missing or malformed key stops every role
with a message naming BACKUP_API_SECRET_KEY, never a traceback; the metadata PostgreSQL
never holds a password in plain text.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Stack, start_stack
from tests.services import (
    PG_PASSWORD,
    PostgresCluster,
    Process,
    Redis,
    backup_api_cli,
    free_port,
    wait_http,
)

URI_SECRET = "Uri-Secret-5518"


def _new_key() -> str:
    """A key in Fernet's own form (the stacks use 64 hex digits: both are accepted)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _stored(pg: PostgresCluster, env: dict[str, str]) -> str:
    """Everything the metadata DB holds about databases, as psql prints it."""
    meta = env["DATABASE_URL"].rsplit("/", 1)[1]
    return pg.psql("SELECT id, password, options::text FROM databases ORDER BY id", meta)


def _refused(result_code: int | None, output: str) -> None:
    assert result_code == 2, output[-2000:]
    assert "BACKUP_API_SECRET_KEY" in output, output[-2000:]
    assert "Traceback" not in output, output[-2000:]


def _exit_of(process: Process, timeout: float = 60) -> int | None:
    assert process.process is not None
    try:
        return process.process.wait(timeout)
    finally:
        process.stop()


def _api(env: dict[str, str], log: Path, stack: Stack) -> Process:
    """Start the stack's API anew with ``env``; point its client at it."""
    port = free_port()
    api = Process("api", ["api", "--host", "127.0.0.1", "--port", str(port)], env, log).start()
    stack.client.base = f"http://127.0.0.1:{port}"
    wait_http(stack.client.base + "/health")
    return api


@pytest.fixture
def stack(tmp_path: Path, pg: PostgresCluster, redis: Redis) -> Iterator[Stack]:
    """A stack of its own: the test stops it and starts its roles with other keys."""
    running = start_stack(tmp_path / "stack", pg, redis)
    yield running
    for process in [running.api, *running.workers]:
        process.stop()


def test_rotation_round_trip_through_the_cli(stack: Stack, pg: PostgresCluster) -> None:
    key_a, key_b = stack.env["BACKUP_API_SECRET_KEY"], _new_key()
    db_id = stack.client.register_postgres(pg, "postgres")
    mongo = stack.client.post("/databases", json={
        "id": "mongo-uri", "engine": "mongodb", "host": "127.0.0.1", "database_name": "shop",
        "options": {"uri": f"mongodb://app:{URI_SECRET}@127.0.0.1:27017/shop", "oplog": False}})
    assert mongo.status_code == 201, mongo.text
    assert stack.client.get(f"/databases/{db_id}").json()["password_set"] is True

    # In the metadata PostgreSQL: tokens, never the passwords (the config-declared one too).
    before = _stored(pg, stack.env)
    assert PG_PASSWORD not in before and URI_SECRET not in before
    assert before.count("gAAAAA") == 3, before  # two passwords and the uri
    assert '"oplog": false' in before  # options other than the uri stay readable

    # B first, A still listed: the API starts, reads A's rows and writes with B.
    root = stack.root
    for process in [stack.api, *stack.workers]:
        process.stop()
    env_ba = {**stack.env, "BACKUP_API_SECRET_KEY": f"{key_b},{key_a}"}
    stack.api = _api(env_ba, root / "api-ba.log", stack)
    assert stack.client.get(f"/databases/{db_id}").json()["password_set"] is True
    second = stack.client.register_postgres(pg, "postgres")
    stack.api.stop()

    rotated = backup_api_cli(env_ba, "secrets", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.startswith("4 stored secret(s) encrypted with the first key of "
                                     "BACKUP_API_SECRET_KEY; 0 of them were in plain text"), \
        rotated.stdout
    after = _stored(pg, stack.env)
    assert after != before and PG_PASSWORD not in after and URI_SECRET not in after

    # A alone opens nothing any more: a worker started with it refuses to start.
    worker_a = Process("worker-a", ["worker"], stack.env, root / "worker-a.log").start()
    _refused(_exit_of(worker_a), worker_a.log())
    assert "cannot be decrypted" in worker_a.log() and f"'{db_id}' password" in worker_a.log()

    # B alone: the roles start and a backup connects with the stored password.
    env_b = {**stack.env, "BACKUP_API_SECRET_KEY": key_b}
    stack.api = _api(env_b, root / "api-b.log", stack)
    stack.workers = [Process("worker-b", ["worker", "--concurrency=1"], env_b,
                             root / "worker-b.log").start()]
    for database in (db_id, second, "config-managed"):
        created = stack.client.post("/backups", json={"database_id": database})
        assert created.status_code == 202, created.text
        backup = stack.client.wait_backup(created.json()["id"])
        assert backup["status"] == "completed", backup["error"]
    assert "Traceback" not in stack.logs()


def _cli_env(tmp_path: Path, pg: PostgresCluster, key: str) -> dict[str, str]:
    """A metadata DB of its own on PostgreSQL, with one config-declared password."""
    meta = f"meta_{uuid.uuid4().hex[:8]}"
    pg.create_database(meta)
    (tmp_path / "config.yaml").write_text(
        "databases:\n  - id: declared\n    engine: postgres\n    host: 127.0.0.1\n"
        f"    port: {pg.port}\n    username: backup\n    password: ${{TEST_PG_PASSWORD}}\n"
        "    database_name: postgres\n")
    return {"BACKUP_API_CONFIG": str(tmp_path / "config.yaml"),
            "BACKUP_API_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": pg.url(meta),
            "CELERY_BROKER_URL": "memory://", "TEST_PG_PASSWORD": PG_PASSWORD,
            "BACKUP_API_SECRET_KEY": key, "BACKUP_API_SECRET_KEY_FILE": ""}


def test_a_wrong_key_stops_every_role_naming_the_variable(tmp_path: Path,
                                                           pg: PostgresCluster) -> None:
    env = _cli_env(tmp_path, pg, _new_key())
    first = backup_api_cli(env, "migrate")
    assert first.returncode == 0, first.stderr
    assert PG_PASSWORD not in _stored(pg, env) and "gAAAAA" in _stored(pg, env)

    wrong = {**env, "BACKUP_API_SECRET_KEY": _new_key()}
    for argv in (["migrate"], ["keys", "list"], ["worker"], ["beat"],
                 ["api", "--port", str(free_port())]):
        result = backup_api_cli(wrong, *argv)
        _refused(result.returncode, result.stderr)
        assert "databases 'declared' password" in result.stderr, result.stderr
        assert result.stdout == ""


def test_a_missing_malformed_or_doubled_key_stops_at_start(tmp_path: Path,
                                                          pg: PostgresCluster) -> None:
    env = _cli_env(tmp_path, pg, "")
    missing = backup_api_cli(env, "worker")
    _refused(missing.returncode, missing.stderr)
    assert "no secret key: set BACKUP_API_SECRET_KEY" in missing.stderr
    # Without a key, a distributed role never makes one up.
    assert not (tmp_path / "data" / "secret.key").exists()

    malformed = "not-a-real-key-but-a-password-77"
    result = backup_api_cli({**env, "BACKUP_API_SECRET_KEY": f"{_new_key()},{malformed}"},
                            "api", "--port", str(free_port()))
    _refused(result.returncode, result.stderr)
    assert "key 2 of 2 is not a secret key" in result.stderr
    assert malformed not in result.stderr + result.stdout

    key_file = tmp_path / "key"
    key_file.write_text(f"{_new_key()}\n")
    both = backup_api_cli({**env, "BACKUP_API_SECRET_KEY": _new_key(),
                           "BACKUP_API_SECRET_KEY_FILE": str(key_file)}, "migrate")
    _refused(both.returncode, both.stderr)
    from_file = backup_api_cli({**env, "BACKUP_API_SECRET_KEY_FILE": str(key_file)}, "migrate")
    assert from_file.returncode == 0, from_file.stderr


def test_a_lost_key_can_be_given_up_and_config_passwords_come_back(
        tmp_path: Path, pg: PostgresCluster) -> None:
    env = _cli_env(tmp_path, pg, _new_key())
    assert backup_api_cli(env, "migrate").returncode == 0
    lost = {**env, "BACKUP_API_SECRET_KEY": _new_key()}
    refused = backup_api_cli(lost, "secrets", "rotate")
    _refused(refused.returncode, refused.stderr)
    assert "--discard-unreadable" in refused.stderr

    given_up = backup_api_cli(lost, "secrets", "rotate", "--discard-unreadable")
    assert given_up.returncode == 0, given_up.stderr
    assert "erased 1 secret(s) no key could decrypt: databases 'declared' password" \
        in given_up.stdout
    # The config-declared password is back, sealed with the new key: every role starts.
    assert backup_api_cli(lost, "migrate").returncode == 0
    assert "gAAAAA" in _stored(pg, env) and PG_PASSWORD not in _stored(pg, env)


BROKEN_CONFIGS = {
    "unclosed quote": 'databases:\n  - id: shop\n    engine: postgres\n    host: h\n'
                      '    password: "{secret}\n    database_name: shop\n',
    "tab indentation": 'databases:\n  - id: shop\n    engine: postgres\n'
                       '\tpassword: {secret}\n    database_name: shop\n',
    "undefined alias": 'databases:\n  - id: shop\n    engine: postgres\n'
                       '    password: *{secret}\n    database_name: shop\n',
    "bad escape": 'databases:\n  - id: shop\n    engine: postgres\n'
                  '    password: "{secret}\\q"\n    database_name: shop\n',
    "colon in a plain value": 'databases:\n  - id: shop\n    engine: postgres\n'
                              '    password: {secret}: x\n    database_name: shop\n',
}


@pytest.mark.parametrize("case", BROKEN_CONFIGS)
def test_a_broken_password_line_is_located_never_shown(case: str, tmp_path: Path) -> None:
    secret = "Yaml-Secret-" + uuid.uuid4().hex[:10]
    (tmp_path / "config.yaml").write_text(BROKEN_CONFIGS[case].format(secret=secret))
    env = {"BACKUP_API_CONFIG": str(tmp_path / "config.yaml"),
           "BACKUP_API_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": "",
           "CELERY_BROKER_URL": ""}
    for argv in (["check-config"], ["run", "--port", str(free_port())]):
        result = backup_api_cli(env, *argv)
        assert result.returncode == 2, result.stderr
        assert secret not in result.stderr + result.stdout, result.stderr
        assert secret[:8] not in result.stderr + result.stdout, result.stderr
        assert "invalid configuration:" in result.stderr and "not valid YAML" in result.stderr
        # Where, and which key: enough to fix it without echoing it.
        assert "line " in result.stderr and "column " in result.stderr, result.stderr
        assert "password" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
