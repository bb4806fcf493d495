"""PostgreSQL: ``pg_dump --format=custom`` without its own compression."""

from __future__ import annotations

from shared.engines.base import DumpCommand, Engine, Target


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


class PostgresEngine(Engine):
    name = "postgres"
    tool = "pg_dump"

    def __init__(self, pg_dump: str = "pg_dump") -> None:
        self.pg_dump = pg_dump

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
