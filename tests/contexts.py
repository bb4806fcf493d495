"""A real process context for in-process tests: a migrated metadata DB and local storage."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from shared.config import RuntimeSettings, parse_config
from shared.context import Context
from shared.metadata_db import MetadataDB
from shared.storage import LocalStorage
from tests.services import PostgresCluster

# Parametrize a fixture with these and call ``make_context``: every test runs on both.
METADATA_DBS = ["sqlite", "postgresql"]


def make_context(request: pytest.FixtureRequest, tmp_path: Path, config: str = "") -> Context:
    """Return a context on ``request.param``'s metadata DB, migrated, storing under ``tmp_path``."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/meta.db"
    else:
        pg: PostgresCluster = request.getfixturevalue("pg")
        name = f"shared_{uuid.uuid4().hex[:8]}"
        pg.create_database(name)
        url = pg.url(name)
    runtime = RuntimeSettings(config_path="", data_dir=str(tmp_path), database_url=url,
                              broker_url="memory://")
    db = MetadataDB(url)
    db.migrate()
    return Context(settings=parse_config(config, runtime, {}), db=db,
                   storage=LocalStorage(str(tmp_path / "backups")))
