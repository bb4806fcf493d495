"""Engine and session handling for the metadata DB (PostgreSQL, or SQLite embedded)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

_MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK_KEY = 0x6261636B  # "back"
_STARTUP_LOCK_KEY = 0x73796E63  # "sync"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` / ``postgres://`` URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL and a busy timeout since API and worker share it.

    ``hide_parameters``: a failed statement's error (and so any logged traceback) shows
    the SQL without its values, which include database passwords.
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                         hide_parameters=True)


class MetadataDB:
    """The metadata DB of one process: an engine and a session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sql_engine = make_engine(url)
        self.sessions = sessionmaker(self.sql_engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session; commit on success, roll back on error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision.

        API, workers and beat all call this at start, often at the same moment: a
        lock (advisory on PostgreSQL, a file lock beside SQLite) makes them take turns.
        """
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self._migration_lock(), self.sql_engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Run a block in one process of the cluster at a time.

        API, workers and beat upsert the config's databases and keys at start, often at
        the same moment (``docker compose up``): without this, two of them insert the
        same row and the loser dies on a unique violation. A session-level advisory
        lock on PostgreSQL (held on its own connection), a file lock beside SQLite.
        """
        if self.sql_engine.dialect.name != "postgresql":
            with self._migration_lock(".startup.lock"):
                yield
            return
        with self.sql_engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"),
                               {"key": _STARTUP_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": _STARTUP_LOCK_KEY})
                connection.commit()

    @contextmanager
    def _migration_lock(self, suffix: str = ".migrate.lock") -> Iterator[None]:
        database = self.sql_engine.url.database
        if self.sql_engine.dialect.name != "sqlite" or not database or database == ":memory:":
            yield
            return
        with open(database + suffix, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
