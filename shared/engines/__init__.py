"""Dump engines by name."""

from __future__ import annotations

from shared.engines.base import (
    HEAD_BYTES,
    DumpCommand,
    DumpEngine,
    Target,
    run_dump,
    run_restore,
)
from shared.engines.mongodb import MongoEngine
from shared.engines.postgres import PostgresEngine

DUMP_ENGINES: dict[str, type[DumpEngine]] = {"postgres": PostgresEngine, "mongodb": MongoEngine}


def get_dump_engine(name: str) -> DumpEngine:
    """Return the engine for ``name`` (validated with the config or the API)."""
    return DUMP_ENGINES[name]()


__all__ = ["HEAD_BYTES", "DumpCommand", "DumpEngine", "Target", "get_dump_engine", "run_dump",
           "run_restore"]
