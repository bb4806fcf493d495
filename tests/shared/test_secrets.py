"""Stored secrets: keys, the Encrypted column on both metadata DBs, legacy rows, rotation."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from shared import secrets
from shared.config import RuntimeSettings
from shared.context import Context
from shared.errors import SecretKeyError
from shared.models import Base, Database
from shared.secret_rows import reseal
from tests.contexts import METADATA_DBS, make_context

PASSWORD = "Stored-Secret-8830"
URI = "mongodb://app:Uri-Secret-3317@db.example:27017/shop"


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture(autouse=True)
def _no_keyring_left() -> Iterator[None]:
    yield
    secrets.use(None)


@pytest.fixture(params=METADATA_DBS)
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Context:
    return make_context(request, tmp_path)


def _raw(ctx: Context) -> str:
    with ctx.db.sql_engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT id, password, CAST(options AS TEXT) FROM databases ORDER BY id")).all()
    return repr(rows)


def _add(ctx: Context, db_id: str, password: str | None, options: dict[str, object]) -> None:
    with ctx.db.session() as session:
        session.add(Database(id=db_id, name=db_id, engine="mongodb", host="h", port=27017,
                             database_name="shop", password=password, options=options))


def _read(ctx: Context, db_id: str) -> Database:
    with ctx.db.session() as session:
        row = session.get(Database, db_id)
        assert row is not None
        return row


def test_rows_are_sealed_and_read_back(ctx: Context) -> None:
    secrets.use(secrets.Keyring([_key()], "test"))
    _add(ctx, "shop", PASSWORD, {"uri": URI, "oplog": True})
    _add(ctx, "bare", None, {})
    raw = _raw(ctx)
    assert PASSWORD not in raw and "Uri-Secret" not in raw and raw.count("gAAAAA") == 2
    assert '"oplog": true' in raw  # only the uri of the options is a secret
    row = _read(ctx, "shop")
    assert (row.password, row.options) == (PASSWORD, {"uri": URI, "oplog": True})
    assert (_read(ctx, "bare").password, _read(ctx, "bare").options) == (None, {})


def test_legacy_plain_text_is_read_then_sealed_at_start(ctx: Context) -> None:
    with ctx.db.sql_engine.begin() as connection:  # a row written before encryption
        connection.execute(text(
            "INSERT INTO databases (id, name, engine, host, port, database_name, password, "
            "options, package, enabled, restore_target, managed_by, created_at, updated_at) "
            "VALUES ('old', 'old', 'mongodb', 'h', 27017, 'shop', :password, :options, "
            "false, true, false, 'api', :now, :now)"),
            {"password": PASSWORD, "options": f'{{"uri": "{URI}"}}',
             "now": "2024-01-01 00:00:00+00:00"})
    row = _read(ctx, "old")  # no key needed to read plain text
    assert (row.password, row.options) == (PASSWORD, {"uri": URI})

    secrets.use(secrets.Keyring([_key()], "test"))
    with ctx.db.session() as session:
        outcome = reseal(session, Base.metadata)
    assert (outcome.sealed, outcome.rotated) == (2, 0)
    assert PASSWORD not in _raw(ctx) and "Uri-Secret" not in _raw(ctx)
    assert (_read(ctx, "old").password, _read(ctx, "old").options) == (PASSWORD, {"uri": URI})
    with ctx.db.session() as session:  # the next start finds nothing to do
        assert reseal(session, Base.metadata).sealed == 0


def test_rotation_and_a_lost_key(ctx: Context) -> None:
    key_a, key_b = _key(), "ab" * 32  # Fernet and hex forms
    secrets.use(secrets.Keyring([key_a], "A"))
    _add(ctx, "shop", PASSWORD, {"uri": URI, "tls": True})
    before = _raw(ctx)

    secrets.use(secrets.Keyring([key_b, key_a], "B,A"))
    with ctx.db.session() as session:
        assert reseal(session, Base.metadata, rotate=True).rotated == 2
    assert _raw(ctx) != before

    secrets.use(secrets.Keyring([key_b], "B"))
    assert _read(ctx, "shop").password == PASSWORD

    secrets.use(secrets.Keyring([key_a], "A"))
    with ctx.db.session() as session, pytest.raises(SecretKeyError) as refused:
        reseal(session, Base.metadata)
    assert "2 secret(s)" in refused.value.message
    assert "databases 'shop' password, databases 'shop' options.uri" in refused.value.message
    with pytest.raises(SecretKeyError, match="BACKUP_API_SECRET_KEY"):
        _read(ctx, "shop")

    with ctx.db.session() as session:
        outcome = reseal(session, Base.metadata, rotate=True, discard_unreadable=True)
    assert outcome.discarded == ["databases 'shop' password", "databases 'shop' options.uri"]
    row = _read(ctx, "shop")
    assert (row.password, row.options) == (None, {"tls": True})


def test_writing_a_secret_without_a_key_is_refused(ctx: Context) -> None:
    with pytest.raises(Exception, match="no secret key loaded: set BACKUP_API_SECRET_KEY"):
        _add(ctx, "shop", PASSWORD, {})


def _runtime(tmp_path: Path, key: str = "", key_file: str = "") -> RuntimeSettings:
    return RuntimeSettings(config_path="", data_dir=str(tmp_path / "data"),
                           database_url="sqlite://", broker_url="memory://",
                           secret_key=key, secret_key_file=key_file)


def test_keys_from_the_variable_the_file_or_the_data_directory(tmp_path: Path) -> None:
    hex_key, fernet_key = "0f" * 32, _key()
    keyring = secrets.load_keyring(_runtime(tmp_path, f" {hex_key} ,{fernet_key}"), False)
    assert keyring.keys == [hex_key, fernet_key] and keyring.source == "BACKUP_API_SECRET_KEY"
    token = secrets.Keyring([fernet_key], "old").encrypt("x")
    assert keyring.decrypt(token) == "x"  # every listed key decrypts

    path = tmp_path / "keys"
    path.write_text(f"{fernet_key}\n{hex_key}\n")
    from_file = secrets.load_keyring(_runtime(tmp_path, key_file=str(path)), False)
    assert from_file.keys == [fernet_key, hex_key] and str(path) in from_file.source

    with pytest.raises(SecretKeyError, match="no secret key: set BACKUP_API_SECRET_KEY"):
        secrets.load_keyring(_runtime(tmp_path), generate=False)
    made = secrets.load_keyring(_runtime(tmp_path), generate=True)
    key_path = tmp_path / "data" / "secret.key"
    assert made.generated and stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    again = secrets.load_keyring(_runtime(tmp_path), generate=True)
    assert not again.generated and again.keys == made.keys
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["secret.key"]


@pytest.mark.parametrize("value, message", [
    ("", "is empty"),
    ("tooShort-Password-123", "key 1 of 1 is not a secret key"),
    ("0f" * 31, "key 1 of 1 is not a secret key"),
    (f"{'0f' * 32},{base64.urlsafe_b64encode(os.urandom(31)).decode()}",
     "key 2 of 2 is not a secret key"),
])
def test_a_malformed_key_is_named_never_shown(value: str, message: str) -> None:
    with pytest.raises(SecretKeyError) as refused:
        secrets.parse_keys(value, "BACKUP_API_SECRET_KEY")
    assert message in refused.value.message and "BACKUP_API_SECRET_KEY" in refused.value.message
    for part in value.split(","):
        assert not part or part not in refused.value.message


def test_both_variables_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="not both"):
        secrets.load_keyring(_runtime(tmp_path, "0f" * 32, str(tmp_path / "k")), False)


@pytest.mark.parametrize("value, token", [
    ("gAAAAAshort", False), ("plain password", False), ("gAAAAA" + "=" * 90, False),
])
def test_only_real_tokens_count_as_tokens(value: str, token: bool) -> None:
    assert secrets.is_token(value) is token
    assert secrets.is_token(secrets.Keyring([_key()], "k").encrypt(value))


def test_a_data_directory_open_to_others_is_closed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # made by an older version, under a umask of 022
    secrets.private_dir(str(data))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
