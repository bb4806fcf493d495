"""PostgreSQL globals, the pure parts: the commands, the key, and what a restore leaves out."""

from __future__ import annotations

import pytest

from shared.engines import Target
from shared.engines.options import api_option_errors, option_errors
from shared.engines.pg_globals import (
    applicable,
    build_globals_apply,
    build_globals_dump,
    globals_key,
    wants_globals,
    with_owners,
)
from shared.engines.postgres import PostgresEngine

SECRET = "s3cret:pass'word"
ENGINE = PostgresEngine(pg_dump="/usr/lib/postgresql/16/bin/pg_dump",
                        pg_restore="/usr/lib/postgresql/16/bin/pg_restore")
# What pg_dumpall --globals-only writes (PostgreSQL 15.14+, with its \restrict guard).
SCRIPT = b"""--
-- PostgreSQL database cluster dump
--

\\restrict abc123

SET default_transaction_read_only = off;

CREATE ROLE app;
ALTER ROLE app WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS;
CREATE ROLE backup;
ALTER ROLE backup WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;
CREATE ROLE "Audit Team";
ALTER ROLE "Audit Team" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION;
CREATE ROLE reader;
ALTER ROLE reader WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION;

GRANT reader TO app GRANTED BY backup;

CREATE TABLESPACE fast OWNER app LOCATION '/srv/fast';
CREATE TABLESPACE slow OWNER app LOCATION '/srv/slow';

\\unrestrict abc123
"""


def target(name: str = "shop") -> Target:
    return Target(engine="postgres", host="db.example", port=5433, database_name=name,
                  username="backup", password=SECRET, hostaddr="10.0.0.7")


def test_the_dump_leaves_passwords_out_unless_asked() -> None:
    command = build_globals_dump(ENGINE, target())
    assert command.argv[:3] == ["/usr/lib/postgresql/16/bin/pg_dumpall", "--globals-only",
                                "--no-password"]
    assert "--no-role-passwords" in command.argv
    assert "--no-role-passwords" not in build_globals_dump(ENGINE, target(), passwords=True).argv
    assert SECRET not in " ".join(command.argv) and SECRET in command.secrets
    assert command.secret_files["pgpass"].startswith("db.example:5433:shop:backup:")


def test_the_dump_connects_to_the_registered_database_as_a_name_only() -> None:
    # pg_dumpall would read "host=evil dbname=x" in --database as a connection string.
    command = build_globals_dump(ENGINE, target("host=evil dbname=x"))
    assert "--database=dbname='host=evil dbname=x'" in command.argv
    assert any(arg.startswith("--dbname=") and "hostaddr='10.0.0.7'" in arg
               for arg in command.argv)


def test_psql_applies_stopping_at_the_first_error() -> None:
    command = build_globals_apply(ENGINE, target())
    assert command.argv[0] == "/usr/lib/postgresql/16/bin/psql"
    assert {"--no-psqlrc", "--set=ON_ERROR_STOP=1", "--no-password"} <= set(command.argv)


def test_a_restore_with_globals_keeps_owners_and_grants() -> None:
    restore = ENGINE.build_restore(target(), source_database_name="shop")
    assert {"--no-owner", "--no-privileges"} <= set(restore.argv)
    kept = with_owners(restore)
    assert not {"--no-owner", "--no-privileges"} & set(kept.argv)
    assert "--single-transaction" in kept.argv and kept.secret_files == restore.secret_files


@pytest.mark.parametrize("key, expected", [
    ("shop/2026/11/28/shop-20261128T020000Z-1a2b3c4d.dump.gz",
     "shop/2026/11/28/shop-20261128T020000Z-1a2b3c4d.globals.sql.gz"),
    ("shop/2026/11/28/shop-20261128T020000Z-1a2b3c4d.dump.zst.age",
     "shop/2026/11/28/shop-20261128T020000Z-1a2b3c4d.globals.sql.zst.age"),
    ("shop-1.dump", "shop-1.globals.sql"),
])
def test_the_globals_key_sits_beside_the_dump(key: str, expected: str) -> None:
    assert globals_key(key) == expected


def test_what_the_target_has_and_the_own_role_are_left_out() -> None:
    script, skipped = applicable(SCRIPT, roles={"backup", "Audit Team", "postgres"},
                                 tablespaces={"pg_default", "fast"}, own_role="backup")
    text = script.decode()
    assert skipped == ["CREATE ROLE backup", "ALTER ROLE backup", 'CREATE ROLE "Audit Team"',
                       "CREATE TABLESPACE fast"]
    assert "CREATE ROLE app;" in text and "CREATE ROLE reader;" in text
    # An existing role still gets the backup's attributes, unless it is our own.
    assert 'ALTER ROLE "Audit Team" WITH' in text and "ALTER ROLE backup" not in text
    assert "GRANT reader TO app GRANTED BY backup;" in text
    assert "CREATE TABLESPACE slow" in text and "CREATE TABLESPACE fast" not in text
    assert "\\restrict abc123" in text and "\\unrestrict abc123" in text


def test_on_an_empty_server_only_the_own_role_is_left_out() -> None:
    script, skipped = applicable(SCRIPT, roles=set(), tablespaces=set(), own_role="backup")
    assert skipped == ["CREATE ROLE backup", "ALTER ROLE backup"]
    assert len(script) < len(SCRIPT)


def test_globals_is_a_postgres_flag() -> None:
    assert wants_globals("postgres", {"globals": True})
    assert not wants_globals("postgres", {"globals": "true"})
    assert not wants_globals("mongodb", {"globals": True})
    assert option_errors("postgres", {"globals": "yes"}) == {"globals": "must be true or false"}
    assert "unknown option" in option_errors("mongodb", {"globals": True})["globals"]


def test_password_hashes_are_config_only_and_need_globals() -> None:
    assert option_errors("postgres", {"globals": True, "globals_passwords": True}) == {}
    assert api_option_errors("postgres", {"globals": True}) == {}
    refused = api_option_errors("postgres", {"globals": True, "globals_passwords": True})
    assert refused["globals_passwords"].startswith("is config-only")
    assert api_option_errors("postgres", {"globals": True, "globals_passwords": False}) == {}
    alone = option_errors("postgres", {"globals_passwords": True})
    assert alone == {"globals_passwords": "takes effect only with globals: true"}


def test_quoted_names_are_read_as_the_server_stores_them() -> None:
    script = (b'CREATE ROLE "we""ird";\nALTER ROLE "we""ird" WITH NOLOGIN;\n'
              b'CREATE ROLE "user";\nCREATE ROLE "user2";\nCREATE ROLE app;\n')
    out, skipped = applicable(script, roles={'we"ird', "user"}, tablespaces=set(),
                              own_role=None)
    assert skipped == ['CREATE ROLE "we""ird"', 'CREATE ROLE "user"']
    assert out == b'ALTER ROLE "we""ird" WITH NOLOGIN;\nCREATE ROLE "user2";\nCREATE ROLE app;\n'


def test_thousands_of_roles_are_one_lookup_per_line() -> None:
    names = {f"role_{n}" for n in range(20_000)}
    script = "".join(f"CREATE ROLE {n};\nALTER ROLE {n} WITH NOLOGIN;\n" for n in names).encode()
    out, skipped = applicable(script, roles=names, tablespaces=set(), own_role="role_1")
    assert len(skipped) == 20_001 and out.count(b"\n") == 19_999
