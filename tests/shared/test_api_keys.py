"""API keys in the metadata DB (SQLite here): hashes only, scopes, last use, config keys."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from shared import api_keys
from shared.config import Settings, load_settings
from shared.errors import ConfigError, Conflict, Invalid, NotFound
from shared.metadata_db import MetadataDB
from shared.models import ApiKey

CI_KEY = "ci-" + "k" * 40
OPS_KEY = "ops-" + "o" * 40


def _settings(tmp_path: Path, auth: str = "") -> Settings:
    config = tmp_path / "config.yaml"
    config.write_text(auth)
    return load_settings(str(config), env={"BACKUP_API_DATA_DIR": str(tmp_path / "data"),
                                           "CI_KEY": CI_KEY, "OPS_KEY": OPS_KEY})


@pytest.fixture
def db(tmp_path: Path) -> MetadataDB:
    metadata = MetadataDB(_settings(tmp_path).runtime.database_url)
    metadata.migrate()
    return metadata


def _row(db: MetadataDB, name: str) -> ApiKey:
    with db.session() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    assert row is not None
    return row


def test_scopes_nest_admin_over_write_over_read_and_metrics_apart() -> None:
    assert api_keys.granted(["admin"]) == {"admin", "write", "read", "metrics"}
    assert api_keys.granted(["write"]) == {"write", "read"}
    assert api_keys.granted(["read"]) == {"read"}
    assert api_keys.granted(["metrics"]) == {"metrics"}
    assert api_keys.granted(["read", "metrics"]) == {"read", "metrics"}
    assert api_keys.parse_scopes(["read,write", "metrics"]) == ["read", "write", "metrics"]
    with pytest.raises(Invalid, match="unknown scope root"):
        api_keys.parse_scopes(["read,root"])


def test_a_created_key_is_random_and_only_its_hash_is_stored(db: MetadataDB) -> None:
    with db.session() as session:
        _, secret = api_keys.create_key(session, "ci", ["read"])
        _, other = api_keys.create_key(session, "ci2", ["read"])
    assert secret.startswith("bak_") and len(secret) == 4 + 43 and secret != other
    with db.sql_engine.connect() as connection:
        dump = "\n".join(str(tuple(row)) for row in connection.execute(
            text("SELECT * FROM api_keys")))
    assert secret not in dump and secret[4:] not in dump
    row = _row(db, "ci")
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.prefix == secret[:8]

    with db.session() as session:
        assert api_keys.find_key(session, secret) is not None
        # The stored hash, the shown prefix or a near miss is no key.
        for guess in (row.key_hash, row.prefix, secret[:-1], secret + "x", secret.upper()):
            assert api_keys.find_key(session, guess) is None


def test_names_are_unique_even_after_revocation(db: MetadataDB) -> None:
    with db.session() as session:
        _, secret = api_keys.create_key(session, "ci", ["write"])
    with db.session() as session:
        api_keys.revoke_key(session, "ci")
    with db.session() as session:
        assert api_keys.find_key(session, secret) is None
        with pytest.raises(Conflict, match="a revoked key named 'ci' exists"):
            api_keys.create_key(session, "ci", ["read"])
        with pytest.raises(NotFound):
            api_keys.revoke_key(session, "nobody")
        with pytest.raises(Invalid, match="key name"):
            api_keys.create_key(session, "bad name;", ["read"])


def test_last_use_is_written_at_most_once_a_minute(db: MetadataDB) -> None:
    with db.session() as session:
        key, _ = api_keys.create_key(session, "ci", ["read"])
        first = key.created_at
        api_keys.note_use(session, key, first)
        api_keys.note_use(session, key, first + timedelta(seconds=59))
        assert key.last_used_at == first
        api_keys.note_use(session, key, first + timedelta(seconds=60))
        assert key.last_used_at == first + timedelta(seconds=60)


def test_the_first_admin_key_is_made_only_into_an_empty_table(db: MetadataDB) -> None:
    with db.session() as session:
        secret = api_keys.create_first_key(session)
        assert secret is not None
        assert api_keys.create_first_key(session) is None
    with db.session() as session:
        api_keys.revoke_key(session, "admin")
    # Every key revoked: a restart must not hand out a new one.
    with db.session() as session:
        assert api_keys.create_first_key(session) is None
        assert api_keys.count_keys(session) == (0, 1)


def test_config_keys_are_upserted_taken_over_renamed_and_revoked(
        tmp_path: Path, db: MetadataDB) -> None:
    with db.session() as session:
        _, cli_secret = api_keys.create_key(session, "ops", ["read"])
    declared = """
auth:
  keys:
    - {name: ci, scopes: [read, write], key: "${CI_KEY}"}
    - {name: ops, scopes: [admin], key: "${OPS_KEY}"}
"""
    api_keys.sync_config_keys(db, _settings(tmp_path, declared))
    api_keys.sync_config_keys(db, _settings(tmp_path, declared))  # idempotent
    with db.session() as session:
        assert api_keys.find_key(session, CI_KEY) is not None
        # "ops" was made with the CLI; the config now owns it and its secret.
        assert api_keys.find_key(session, cli_secret) is None
        ops = api_keys.find_key(session, OPS_KEY)
        assert ops is not None and ops.managed_by == "config" and ops.scopes == ["admin"]
        with pytest.raises(Conflict, match="declared in the config"):
            api_keys.revoke_key(session, "ci")

    # "ci" renamed (same secret) and "ops" removed from the file.
    renamed = '\nauth:\n  keys:\n    - {name: ci-2, scopes: [read], key: "${CI_KEY}"}\n'
    api_keys.sync_config_keys(db, _settings(tmp_path, renamed))
    with db.session() as session:
        ci = api_keys.find_key(session, CI_KEY)
        assert ci is not None and ci.name == "ci-2" and ci.scopes == ["read"]
        assert api_keys.find_key(session, OPS_KEY) is None
    assert _row(db, "ops").revoked_at is not None

    # Put back: the config is the source of truth, so the key is active again.
    api_keys.sync_config_keys(db, _settings(tmp_path, declared.replace("ci,", "ci-2,")))
    with db.session() as session:
        assert api_keys.find_key(session, OPS_KEY) is not None


def test_one_secret_cannot_be_two_keys(tmp_path: Path, db: MetadataDB) -> None:
    with db.session() as session:
        _, secret = api_keys.create_key(session, "made-by-cli", ["read"])
    twice = f'\nauth:\n  keys:\n    - {{name: copy, scopes: [admin], key: "{secret}"}}\n'
    with pytest.raises(ConfigError, match="already stored as 'made-by-cli'"):
        api_keys.sync_config_keys(db, _settings(tmp_path, twice))


@pytest.mark.parametrize(("auth", "message"), [
    ("auth:\n  keys:\n    - {name: ci, scopes: [read], key: short}\n", "too short"),
    ("auth:\n  keys:\n    - {name: ci, scopes: [root], key: '${CI_KEY}'}\n",
     "auth.keys[0].scopes[0]: Must be one of: read, write, admin, metrics"),
    ("auth:\n  keys:\n    - {name: ci, scopes: [], key: '${CI_KEY}'}\n", "auth.keys[0].scopes"),
    ("auth:\n  keys:\n    - {name: ci, scopes: [read]}\n", "exactly one of key or key_file"),
    ("auth:\n  keys:\n    - {name: ci, scopes: [read], key: '${NOT_SET}'}\n",
     "auth.keys[0].key: environment variable NOT_SET is not set"),
    ("auth:\n  keys:\n    - {name: a, scopes: [read], key: '${CI_KEY}'}\n"
     "    - {name: b, scopes: [read], key: '${CI_KEY}'}\n", "auth.keys[1].key: duplicate key"),
    ("auth:\n  disabled: yes please\n", "auth.disabled"),
])
def test_bad_auth_config_fails_naming_the_key(tmp_path: Path, auth: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _settings(tmp_path, auth)
    assert message in raised.value.message


def test_a_key_file_is_read_like_other_secret_files(tmp_path: Path) -> None:
    (tmp_path / "ci.key").write_text(CI_KEY + "\n")
    settings = _settings(tmp_path, f"auth:\n  keys:\n    - name: ci\n      scopes: [read]\n"
                                   f"      key_file: {tmp_path / 'ci.key'}\n")
    assert settings.auth.keys[0].key == CI_KEY
    assert CI_KEY not in repr(settings)
