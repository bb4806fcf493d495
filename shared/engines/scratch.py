"""What a test restore asks of a server beyond the dump tools: row counts, scratch databases.

One small driver per engine, by name in ``SCRATCH_DRIVERS``:

- ``counted_dump(target)`` wraps a dump: it counts the rows of every table (documents
  of every collection) of the source as the dump sees them, and may give the dump a
  snapshot to take (PostgreSQL). Counting never fails a backup: on any error the
  counts are ``None`` and a warning is logged.
- ``create(server, name)`` / ``drop(server, name)`` make and remove the scratch
  database on ``server`` (a ``Target`` whose ``database_name`` is where to connect);
- ``count(target)`` counts the rows of the restored database.

Errors: ``DumpError`` with a readable message (the password redacted).

PostgreSQL counts exactly what ``pg_dump`` dumps: a ``REPEATABLE READ`` transaction
exports its snapshot (``pg_export_snapshot()``), ``pg_dump --snapshot`` takes it, and
the counts run in that transaction, beside the dump, while it stays open. MongoDB has
no shared snapshot for ``mongodump``: each collection is counted before and after the
dump, and only the collections whose count did not change are recorded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from shared.engines.base import DumpCommand, Target
from shared.engines.options import uri_password
from shared.engines.unreachable import is_unreachable, unreachable_message
from shared.errors import DumpError, redact

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "backup_api_verify_"
CONNECT_TIMEOUT = 15
# Schemas (PostgreSQL) whose tables are the server's own, never the user's.
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


def scratch_name(job_id: str) -> str:
    """Return the scratch database name of a verification: ``backup_api_verify_<8 hex>``."""
    return SCRATCH_PREFIX + job_id.replace("-", "")[:8]


@dataclass
class Counting:
    """The counts of one dump: ``snapshot`` for the dump tool, ``counts`` once it ended."""

    snapshot: str | None = None
    counts: dict[str, int] | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def with_snapshot(self, command: DumpCommand) -> DumpCommand:
        """Return ``command`` taking the exported snapshot, if there is one."""
        if self.snapshot is None:
            return command
        return dataclasses.replace(command, argv=[*command.argv, f"--snapshot={self.snapshot}"])


class ScratchDriver(ABC):
    @abstractmethod
    def counted_dump(self, target: Target) -> Any:
        """Return a context manager yielding a :class:`Counting` for a dump of ``target``."""

    @abstractmethod
    def create(self, server: Target, name: str) -> None:
        """Create the empty database ``name`` on ``server``."""

    @abstractmethod
    def drop(self, server: Target, name: str) -> None:
        """Drop the database ``name`` on ``server`` if it exists."""

    @abstractmethod
    def count(self, target: Target) -> dict[str, int]:
        """Return ``{table: rows}`` of every user table of ``target``."""


def _failure(action: str, target: Target, exc: Exception) -> DumpError:
    detail = redact(str(exc).strip(), [target.password,
                                       uri_password(target.options.get("uri") or "")])
    if is_unreachable(detail):
        log.warning("could not connect to %s: %s", target.endpoint, detail)
        detail = unreachable_message(target.endpoint)
    return DumpError(f"{action}: {detail}")


class PostgresScratch(ScratchDriver):
    def _connect(self, target: Target, autocommit: bool = False) -> Any:
        import psycopg

        return psycopg.connect(host=target.host, hostaddr=target.hostaddr, port=target.port,
                               dbname=target.database_name, user=target.username,
                               password=target.password, autocommit=autocommit,
                               sslmode=target.options.get("sslmode"),
                               connect_timeout=CONNECT_TIMEOUT, application_name="backup-api")

    @contextmanager
    def counted_dump(self, target: Target) -> Iterator[Counting]:
        import psycopg

        counting = Counting()
        try:
            conn = self._connect(target)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        except psycopg.Error as exc:
            log.warning("row counts of %s not recorded: %s", target.endpoint,
                        _failure("cannot export a snapshot", target, exc).message)
            yield counting
            return
        counting.snapshot = row[0]

        def count() -> None:
            try:
                counting.counts = _pg_counts(conn)
            except psycopg.Error as exc:
                log.warning("row counts of %s not recorded: %s", target.endpoint,
                            _failure("counting failed", target, exc).message)

        # Beside the dump, in the transaction whose snapshot pg_dump took; kept open
        # (so the snapshot stays importable) until the dump has ended.
        counting._thread = threading.Thread(target=count, name="source-counts", daemon=True)
        counting._thread.start()
        try:
            yield counting
        except BaseException:
            conn.cancel()  # the dump failed: its counts are of no use
            raise
        finally:
            counting._thread.join()
            conn.close()

    def create(self, server: Target, name: str) -> None:
        from psycopg import Error, sql

        # template0 in UTF-8 with the C locale: empty, and valid on any server.
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' "
                            "LC_COLLATE 'C' LC_CTYPE 'C'").format(sql.Identifier(name))
        try:
            with self._connect(server, autocommit=True) as conn:
                conn.execute(statement)
        except Error as exc:
            raise _failure(f"cannot create the scratch database {name} on {server.endpoint}",
                           server, exc) from exc

    def drop(self, server: Target, name: str) -> None:
        from psycopg import Error, errors, sql

        try:
            with self._connect(server, autocommit=True) as conn:
                for attempt in range(5):
                    # A killed pg_restore's session may linger a moment.
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                    try:
                        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}")
                                     .format(sql.Identifier(name)))
                        return
                    except errors.ObjectInUse:
                        if attempt == 4:
                            raise
                        time.sleep(1)
        except Error as exc:
            raise _failure(f"cannot drop the scratch database {name} on {server.endpoint}",
                           server, exc) from exc

    def count(self, target: Target) -> dict[str, int]:
        from psycopg import Error

        try:
            with self._connect(target) as conn:
                return _pg_counts(conn)
        except Error as exc:
            raise _failure("cannot count the restored rows", target, exc) from exc


def _pg_counts(conn: Any) -> dict[str, int]:
    """Count the rows of every ordinary table (partitions included), ``ONLY`` each one."""
    from psycopg import sql

    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace WHERE c.relkind = 'r' AND n.nspname <> ALL(%s) "
        "AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%' "
        "ORDER BY 1, 2", (list(_SYSTEM_SCHEMAS),)).fetchall()
    counts: dict[str, int] = {}
    for schema, table in tables:
        row = conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(
            sql.Identifier(schema), sql.Identifier(table))).fetchone()
        counts[f"{schema}.{table}"] = int(row[0])
    return counts


class MongoScratch(ScratchDriver):
    def _client(self, target: Target) -> Any:
        from pymongo import MongoClient

        options = target.options
        kwargs: dict[str, Any] = {"serverSelectionTimeoutMS": CONNECT_TIMEOUT * 1000}
        if options.get("uri"):
            return MongoClient(options["uri"], **kwargs)
        kwargs.update({key: options[key] for key in (
            "authSource", "authMechanism", "replicaSet", "tls", "tlsCAFile", "tlsInsecure")
            if key in options})
        return MongoClient(host=target.host, port=target.port, username=target.username,
                           password=target.password, **kwargs)

    @contextmanager
    def counted_dump(self, target: Target) -> Iterator[Counting]:
        counting = Counting()
        before = self._quiet_count(target)
        yield counting
        after = self._quiet_count(target) if before is not None else None
        if before is not None and after is not None:
            # A collection written during the dump has no count the archive must match.
            counting.counts = {name: n for name, n in before.items() if after.get(name) == n}

    def _quiet_count(self, target: Target) -> dict[str, int] | None:
        try:
            return self.count(target)
        except DumpError as exc:
            log.warning("document counts of %s not recorded: %s", target.database_name,
                        exc.message)
            return None

    def create(self, server: Target, name: str) -> None:
        """Nothing to do: MongoDB creates a database with its first collection."""

    def drop(self, server: Target, name: str) -> None:
        from pymongo.errors import PyMongoError

        try:
            with self._client(server) as client:
                client.drop_database(name)
        except PyMongoError as exc:
            raise _failure(f"cannot drop the scratch database {name}", server, exc) from exc

    def count(self, target: Target) -> dict[str, int]:
        from pymongo.errors import PyMongoError

        try:
            with self._client(target) as client:
                db = client[target.database_name]
                return {name: int(db[name].count_documents({}))
                        for name in sorted(db.list_collection_names())
                        if not name.startswith("system.")}
        except PyMongoError as exc:
            raise _failure("cannot count the documents", target, exc) from exc


SCRATCH_DRIVERS: dict[str, type[ScratchDriver]] = {"postgres": PostgresScratch,
                                                    "mongodb": MongoScratch}


def scratch_driver(engine: str) -> ScratchDriver:
    """Return the driver of ``engine`` (validated with the config or the API)."""
    return SCRATCH_DRIVERS[engine]()


def counted_dump(engine: str, target: Target, wanted: bool) -> AbstractContextManager[Counting]:
    """Return what wraps a dump of ``target``: counting its rows when ``wanted``
    (``verify.test_restore`` is on for the database), else nothing."""
    if not wanted:
        return nullcontext(Counting())
    manager: AbstractContextManager[Counting] = scratch_driver(engine).counted_dump(target)
    return manager
