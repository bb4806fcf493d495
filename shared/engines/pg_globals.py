"""PostgreSQL globals (``options.globals``): roles and tablespaces, dumped and applied.

A database dump (``pg_dump``) holds no roles: restored onto a new server, its owners and
grants name roles that do not exist. ``pg_dumpall --globals-only`` writes them as SQL;
without ``options.globals_passwords`` (config-only) it adds ``--no-role-passwords``, so
no password hash leaves the server.

Applying is what ``pg_dumpall``'s own restore does, made safe to repeat on a server
that has some of the objects already: the ``CREATE ROLE``/``CREATE TABLESPACE`` of
objects the target has are left out (the "already exists" errors, without parsing a
message in the server's language), and so are the statements about the role the
restore connects as (a dump's ``ALTER ROLE … PASSWORD`` or ``NOSUPERUSER`` must not
lock us out of the target). Everything else runs with ``ON_ERROR_STOP``: a real error
(a tablespace directory missing on the new server) fails the restore before
``pg_restore`` starts. The command builders and the filter are pure.
"""

from __future__ import annotations

import dataclasses
import os
import re

from shared.engines.base import DumpCommand, Target
from shared.engines.postgres import PostgresEngine, _conninfo_value, with_connection
from shared.engines.unreachable import is_unreachable, unreachable_message
from shared.errors import DumpError, redact

# The options of a PostgreSQL database that turn this on and put passwords in.
GLOBALS_OPTION = "globals"
PASSWORDS_OPTION = "globals_passwords"
# How a globals artifact is named beside its dump: ``….dump.gz`` → ``….globals.sql.gz``.
DUMP_EXTENSION = ".dump"
GLOBALS_EXTENSION = ".globals.sql"
# The statements a restore may leave out: the kind, the name as written, what follows.
_STATEMENT = re.compile(r'(CREATE ROLE|ALTER ROLE|CREATE TABLESPACE) ("(?:[^"]|"")*"|[^\s;"]+)'
                        r'(;| WITH | )')


def wants_globals(engine: str, options: dict[str, object] | None) -> bool:
    """Tell whether a database's backups take its server's globals too."""
    return engine == "postgres" and (options or {}).get(GLOBALS_OPTION) is True


def globals_key(storage_key: str) -> str:
    """Return the key of the globals artifact taken beside the dump at ``storage_key``."""
    folder, _, name = storage_key.rpartition("/")
    name = name.replace(DUMP_EXTENSION, GLOBALS_EXTENSION, 1)
    return f"{folder}/{name}" if folder else name


def _tool(engine: PostgresEngine, name: str) -> str:
    """Return ``name`` from the directory of the chosen ``pg_dump`` (same version)."""
    return os.path.join(os.path.dirname(engine.pg_dump), name)


def build_globals_dump(engine: PostgresEngine, target: Target,
                       passwords: bool = False) -> DumpCommand:
    """Build ``pg_dumpall --globals-only`` (``--no-role-passwords`` unless ``passwords``).

    pg_dumpall ignores the database of ``--dbname`` and connects to ``postgres`` unless
    ``--database`` names one: the registered database, the one its credentials (and
    pgpass line) are for. libpq expands that value as a connection string too, so it
    goes quoted inside one, where it is only a name.
    """
    argv = [_tool(engine, "pg_dumpall"), "--globals-only", "--no-password",
            f"--database=dbname={_conninfo_value(target.database_name)}"]
    if not passwords:
        argv.append("--no-role-passwords")
    return with_connection(argv, target)


def build_globals_apply(engine: PostgresEngine, target: Target) -> DumpCommand:
    """Build ``psql`` reading the globals script on stdin, stopping at the first error."""
    return with_connection([_tool(engine, "psql"), "--no-psqlrc", "--quiet", "--no-password",
                            "--set=ON_ERROR_STOP=1"], target)


def with_owners(restore: DumpCommand) -> DumpCommand:
    """Return ``pg_restore`` keeping the dump's owners and grants: its roles now exist."""
    argv = [arg for arg in restore.argv if arg not in ("--no-owner", "--no-privileges")]
    return dataclasses.replace(restore, argv=argv)


def applicable(script: bytes, roles: set[str], tablespaces: set[str],
               own_role: str | None) -> tuple[bytes, list[str]]:
    """Return ``script`` without what the target has already or must not change, and
    what was skipped (``CREATE ROLE app``, ``ALTER ROLE backup``) for the restore's details.

    ``pg_dumpall`` writes each of these statements on one line, the name quoted unless
    it is a plain lower-case identifier; one set lookup per line, whatever the number of
    roles.
    """
    kept, skipped = [], []
    for line in script.decode("utf-8").splitlines(keepends=True):
        match = _STATEMENT.match(line)
        if match is None:
            kept.append(line)
            continue
        kind, written, after = match.groups()
        name = written[1:-1].replace('""', '"') if written.startswith('"') else written
        if ((kind == "CREATE ROLE" and after == ";" and (name in roles or name == own_role))
                or (kind == "ALTER ROLE" and after == " WITH " and name == own_role)
                or (kind == "CREATE TABLESPACE" and after == " " and name in tablespaces)):
            skipped.append(f"{kind} {written}")
        else:
            kept.append(line)
    return "".join(kept).encode("utf-8"), skipped


def existing_globals(target: Target) -> tuple[set[str], set[str]]:
    """Return the role and tablespace names the target's server has."""
    import psycopg

    try:
        with psycopg.connect(host=target.host, hostaddr=target.hostaddr, port=target.port,
                             dbname=target.database_name, user=target.username,
                             password=target.password, sslmode=target.options.get("sslmode"),
                             connect_timeout=15, application_name="backup-api") as conn:
            roles = {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}
            spaces = {row[0] for row in conn.execute("SELECT spcname FROM pg_tablespace")}
    except psycopg.Error as exc:
        detail = redact(str(exc).strip(), [target.password])
        if is_unreachable(detail):
            detail = unreachable_message(target.endpoint)
        raise DumpError(f"cannot read the target server's roles: {detail}") from exc
    return roles, spaces
