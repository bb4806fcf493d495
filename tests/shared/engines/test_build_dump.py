"""The pure command builders: what runs, and that no secret reaches the command line."""

from __future__ import annotations

import struct

import pytest
import yaml

from shared.engines import DumpCommand, Target, get_dump_engine
from shared.engines.base import tool_env
from shared.engines.mongodb import ARCHIVE_MAGIC, MongoEngine
from shared.engines.postgres import PostgresEngine
from shared.errors import DumpError

SECRET = 'p@ss:w"ord #1\\ü'


def _everything_visible(command: DumpCommand) -> str:
    """The argv and environment a process list or /proc/PID/environ would show."""
    return " ".join(command.argv) + " " + " ".join(f"{k}={v}" for k, v in command.env.items())


def mongo(**options: object) -> Target:
    return Target(engine="mongodb", host="db.example", port=27018, database_name="app",
                  username="backup", password=SECRET, options=dict(options))


def test_mongodump_streams_an_uncompressed_archive_of_one_database() -> None:
    command = MongoEngine().build_dump(mongo())
    assert command.argv[0] == "mongodump"
    assert "--archive" in command.argv and "--gzip" not in command.argv
    assert {"--host=db.example", "--port=27018", "--username=backup", "--db=app",
            "--config={secrets}/mongo.yaml"} <= set(command.argv)
    assert SECRET not in _everything_visible(command)
    assert yaml.safe_load(command.secret_files["mongo.yaml"]) == {"password": SECRET}
    assert SECRET in command.secrets


def test_mongodump_options_map_to_flags() -> None:
    command = MongoEngine().build_dump(mongo(authSource="admin", authMechanism="PLAIN",
                                             tls=True, replicaSet="rs0"))
    assert "--host=rs0/db.example" in command.argv
    assert {"--authenticationDatabase=admin", "--authenticationMechanism=PLAIN",
            "--ssl"} <= set(command.argv)


def test_mongodump_oplog_dumps_the_whole_deployment() -> None:
    argv = MongoEngine().build_dump(mongo(oplog=True)).argv
    assert "--oplog" in argv
    assert not any(arg.startswith("--db") for arg in argv)  # mongodump refuses both


def test_mongodump_uri_goes_in_the_config_file_with_its_password() -> None:
    uri = "mongodb://admin:Uri%2FSecret@h1:27017,h2:27017/?replicaSet=rs0"
    command = MongoEngine().build_dump(mongo(uri=uri))
    assert "Uri%2FSecret" not in _everything_visible(command)
    assert not any(arg.startswith(("--host", "--port")) for arg in command.argv)
    config = yaml.safe_load(command.secret_files["mongo.yaml"])
    assert config == {"uri": uri, "password": SECRET}
    assert {"Uri%2FSecret", "Uri/Secret"} <= set(command.secrets)
    assert "--serverSelectionTimeout=15" in command.argv


def test_mongodump_leaves_a_uri_timeout_alone() -> None:
    uri = "mongodb://h:27017/?serverSelectionTimeoutMS=5000"
    argv = MongoEngine().build_dump(mongo(uri=uri)).argv
    assert not any(arg.startswith("--serverSelectionTimeout") for arg in argv)


def test_mongodump_without_password_writes_an_empty_config() -> None:
    target = Target(engine="mongodb", host="h", port=1, database_name="d")
    command = MongoEngine().build_dump(target)
    assert yaml.safe_load(command.secret_files["mongo.yaml"]) is None
    assert not any(arg.startswith("--username") for arg in command.argv)


def _archive(collections: int) -> bytes:
    header = b"\x05\x00\x00\x00\x00"  # an empty BSON document
    metadata = b"\x05\x00\x00\x00\x00" * collections
    return struct.pack("<I", ARCHIVE_MAGIC) + header + metadata + b"\xff\xff\xff\xff"


def test_archive_without_collections_is_a_failure() -> None:
    with pytest.raises(DumpError, match="no collections in database 'app'"):
        MongoEngine().check_output(mongo(), _archive(0))
    MongoEngine().check_output(mongo(), _archive(2))


def test_output_that_is_not_an_archive_is_a_failure() -> None:
    with pytest.raises(DumpError, match="not an archive"):
        MongoEngine().check_output(mongo(), b"garbage!")


def test_pg_dump_password_goes_in_a_pgpass_file() -> None:
    target = Target(engine="postgres", host="h", port=5433, database_name="shop",
                    username="app", password=SECRET, options={"sslmode": "require"})
    command = PostgresEngine("/usr/lib/postgresql/16/bin/pg_dump").build_dump(target)
    assert command.argv[0] == "/usr/lib/postgresql/16/bin/pg_dump"
    assert "--format=custom" in command.argv and "--compress=0" in command.argv
    assert SECRET not in _everything_visible(command)
    assert command.env["PGPASSFILE"] == "{secrets}/pgpass"
    assert command.env["PGSSLMODE"] == "require"
    # pgpass escapes ':' and '\' inside fields.
    assert command.secret_files["pgpass"] == (
        'h:5433:shop:app:p@ss\\:w"ord #1\\\\ü\n')


def test_pg_dump_without_password_writes_no_pgpass() -> None:
    command = PostgresEngine().build_dump(
        Target(engine="postgres", host="h", port=5432, database_name="d"))
    assert "PGPASSFILE" not in command.env and not command.secret_files
    assert "--username" not in command.argv


def test_get_dump_engine_knows_both_engines() -> None:
    assert isinstance(get_dump_engine("mongodb"), MongoEngine)
    assert isinstance(get_dump_engine("postgres"), PostgresEngine)


@pytest.mark.parametrize("name", [
    "postgresql://backup@127.0.0.1:6543/postgres",
    "host=127.0.0.1 port=6543 dbname=postgres",
    "x' host='127.0.0.1",
    "back\\slash",
])
def test_pg_database_name_reaches_libpq_as_a_name(name: str) -> None:
    # libpq expands a bare --dbname holding '=' or a URI into a connection string; ours
    # holds one quoted keyword, so the whole name stays a name (tested against a real
    # server in tests/worker/test_attacks_connections_e2e.py).
    target = Target(engine="postgres", host="h", port=5432, database_name=name)
    for command in (PostgresEngine().build_dump(target),
                    PostgresEngine().build_restore(target, "src")):
        dbname = [a for a in command.argv if a.startswith("--dbname=")]
        quoted = name.replace("\\", "\\\\").replace("'", "\\'")
        assert dbname == [f"--dbname=dbname='{quoted}'"]
        assert command.argv[command.argv.index("--host") + 1] == "h"


def test_pg_pinned_address_goes_with_the_name() -> None:
    target = Target(engine="postgres", host="db.internal", port=5432, database_name="shop",
                    hostaddr="10.0.0.7")
    command = PostgresEngine().build_dump(target)
    assert "--dbname=dbname='shop' hostaddr='10.0.0.7'" in command.argv
    assert command.endpoint == "db.internal:5432"


def test_tools_get_a_minimal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "AWS_SECRET_ACCESS_KEY",
                 "BACKUP_API_SECRET_KEY", "PGPASSWORD"):
        monkeypatch.setenv(name, "secret-value")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = tool_env({"PGPASSFILE": "/x/pgpass"})
    assert "secret-value" not in env.values()
    assert env["LANG"] == "C.UTF-8" and env["PGPASSFILE"] == "/x/pgpass" and env["PATH"]
