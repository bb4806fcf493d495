"""PostgreSQL: ``pg_dump --format=custom`` without its own compression.

``resolve`` picks the installed client matching the server (see ``pg_client``).
"""

from __future__ import annotations

from typing import Any

from shared.engines.base import DumpCommand, Engine, Target, version_line
from shared.engines.pg_client import PgClient, choose_client, installed_clients, server_major


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


class PostgresEngine(Engine):
    name = "postgres"
    tool = "pg_dump"

    def __init__(self, pg_dump: str = "pg_dump", server: int | None = None) -> None:
        self.pg_dump = pg_dump
        self.server = server

    def resolve(self, target: Target) -> PostgresEngine:
        """Return this engine bound to the smallest installed pg_dump >= the server's major."""
        installed = installed_clients(target.options.get("pg_bin_dir"))
        server = server_major(target)
        client: PgClient = choose_client(server, installed)
        return PostgresEngine(pg_dump=client.pg_dump, server=server)

    def build_dump(self, target: Target) -> DumpCommand:
        """Build the ``pg_dump`` command; the password travels in a 0600 pgpass file."""
        argv = [
            self.pg_dump,
            "--format=custom",
            "--compress=0",
            "--no-password",
            "--host", target.host,
            "--port", str(target.port),
            "--dbname", target.database_name,
        ]
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
        return DumpCommand(argv=argv, env=env, secret_files=secret_files, secrets=secrets)

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
