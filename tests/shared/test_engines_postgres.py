"""The pg_dump command line: custom format, no compression, no password in argv."""

from __future__ import annotations

from shared.engines import Target
from shared.engines.postgres import PostgresEngine


def test_pg_dump_command_keeps_the_password_off_the_command_line() -> None:
    target = Target(engine="postgres", host="db.local", port=6543, database_name="shop",
                    username="app", password="p:a\\ss")
    command = PostgresEngine().build_dump(target)
    assert command.argv[:4] == ["pg_dump", "--format=custom", "--compress=0", "--no-password"]
    assert "db.local" in command.argv and "6543" in command.argv and "shop" in command.argv
    assert all("p:a" not in arg for arg in command.argv)
    assert command.env["PGPASSFILE"] == "{secrets}/pgpass"
    # pgpass escapes ':' and '\\' in fields.
    assert command.secret_files["pgpass"] == "db.local:6543:shop:app:p\\:a\\\\ss\n"
    assert "p:a\\ss" not in "".join(command.env.values())


def test_no_password_means_no_pgpass() -> None:
    command = PostgresEngine().build_dump(
        Target(engine="postgres", host="h", port=5432, database_name="d"))
    assert "PGPASSFILE" not in command.env and not command.secret_files
    assert "--username" not in command.argv
