"""PostgreSQL: ``pg_dump --format=custom`` without its own compression.

``resolve`` picks the installed client matching the server (see ``pg_client``).
"""

from __future__ import annotations

import logging
from typing import Any

from shared.engines.base import DumpCommand, DumpEngine, Target, version_line
from shared.engines.pg_client import choose_client, installed_clients, server_major
from shared.engines.unreachable import is_unreachable, unreachable_message
from shared.errors import DumpError, redact

log = logging.getLogger(__name__)


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _conninfo_value(value: str) -> str:
    """Quote ``value`` for a libpq connection string: inside it, a value is only a value."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PostgresEngine(DumpEngine):
    name = "postgres"
    tool = "pg_dump"

    def __init__(self, pg_dump: str = "pg_dump", pg_restore: str = "pg_restore",
                 server: int | None = None) -> None:
        self.pg_dump = pg_dump
        self.pg_restore = pg_restore
        self.server = server

    def resolve(self, target: Target) -> PostgresEngine:
        """Return this engine bound to the smallest installed client >= the server's major."""
        installed = installed_clients(target.options.get("pg_bin_dir"))
        server = server_major(target)
        client = choose_client(server, installed)
        return PostgresEngine(pg_dump=client.pg_dump, pg_restore=client.pg_restore,
                              server=server)

    def build_dump(self, target: Target) -> DumpCommand:
        """Build the ``pg_dump`` command; the password travels in a 0600 pgpass file."""
        return _with_connection(
            [self.pg_dump, "--format=custom", "--compress=0", "--no-password"], target)

    def build_restore(self, target: Target, source_database_name: str) -> DumpCommand:
        """Build ``pg_restore`` reading stdin: replace existing objects, stop on error."""
        return _with_connection(
            [self.pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges",
             "--exit-on-error", "--single-transaction", "--no-password"], target)

    def build_check(self) -> DumpCommand:
        """Build ``pg_restore --file=/dev/null``: read a whole archive from stdin, restore nowhere.

        Turning every data block into a script reads the archive to its end, so a cut or
        a broken block structure fails (``--list`` stops after the table of contents).
        The newest installed client, since a pg_restore reads archives of its own and
        older versions.
        """
        client = choose_client(None, installed_clients(None))
        return DumpCommand(argv=[client.pg_restore, "--file=/dev/null"])

    def tool_versions(self) -> dict[str, str]:
        """Return the pg_dump version line and, when known, the server's major."""
        versions = {"pg_dump": version_line([self.pg_dump, "--version"], "pg_dump ")}
        if self.server is not None:
            versions["server_major"] = str(self.server)
        return versions

    def locate(self, options: dict[str, Any] | None = None) -> str:
        """Describe the installed clients by major; raise ``DumpError`` if there is none."""
        installed = installed_clients((options or {}).get("pg_bin_dir"))
        choose_client(None, installed)  # raises when nothing is installed
        return ", ".join(f"{major} ({path})" for major, path in sorted(installed.items()))

    def is_empty(self, target: Target) -> bool:
        """Count tables, views and sequences outside the system schemas."""
        import psycopg

        try:
            # Keywords, so psycopg writes one conninfo string: its dbname stays a name.
            with psycopg.connect(host=target.host, hostaddr=target.hostaddr,
                                 port=target.port, dbname=target.database_name,
                                 user=target.username, password=target.password,
                                 sslmode=target.options.get("sslmode"), connect_timeout=15,
                                 application_name="backup-api") as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE c.relkind IN ('r','v','m','S','p') "
                    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                    "AND n.nspname NOT LIKE 'pg_toast%'").fetchone()
        except psycopg.Error as exc:
            detail = redact(str(exc).strip(), [target.password])
            if is_unreachable(detail):
                log.warning("could not connect to %s: %s", target.endpoint, detail)
                detail = unreachable_message(target.endpoint)
            raise DumpError(f"cannot inspect the target database: {detail}") from exc
        return row is not None and row[0] == 0


def _with_connection(argv: list[str], target: Target) -> DumpCommand:
    """Add the connection flags; the password goes in a 0600 pgpass file, never argv.

    libpq reads ``--dbname`` as a whole connection string when it contains ``=`` or
    starts with ``postgresql://`` (a registered name could then point elsewhere), so
    the name goes inside a connection string of our own, quoted: there it is a name.
    """
    conninfo = f"dbname={_conninfo_value(target.database_name)}"
    if target.hostaddr:
        conninfo += f" hostaddr={_conninfo_value(target.hostaddr)}"
    argv = [*argv, "--host", target.host, "--port", str(target.port), f"--dbname={conninfo}"]
    if target.username:
        argv += ["--username", target.username]
    env = {"PGCONNECT_TIMEOUT": "15", "PGAPPNAME": "backup-api"}
    if target.options.get("sslmode"):
        env["PGSSLMODE"] = str(target.options["sslmode"])
    secret_files: dict[str, str] = {}
    secrets: tuple[str, ...] = ()
    if target.password:
        fields = [target.host, str(target.port), target.database_name,
                  target.username or "*", target.password]
        secret_files["pgpass"] = ":".join(_pgpass_field(f) for f in fields) + "\n"
        env["PGPASSFILE"] = "{secrets}/pgpass"
        secrets = (target.password,)
    return DumpCommand(argv=argv, env=env, secret_files=secret_files, secrets=secrets,
                       endpoint=target.endpoint)


# Public for shared/engines/pg_globals.py: pg_dumpall and psql connect the same way.
with_connection = _with_connection
