"""Dump engines by name."""

from __future__ import annotations

from shared.engines.base import (
    HEAD_BYTES,
    DumpCommand,
    Engine,
    Target,
    run_dump,
    run_restore,
)
from shared.engines.mongodb import MongoEngine
from shared.engines.postgres import PostgresEngine

ENGINE_CLASSES: dict[str, type[Engine]] = {"postgres": PostgresEngine, "mongodb": MongoEngine}


def get_engine(name: str) -> Engine:
    """Return the engine for ``name`` (validated with the config or the API)."""
    return ENGINE_CLASSES[name]()


__all__ = ["HEAD_BYTES", "DumpCommand", "Engine", "Target", "get_engine", "run_dump",
           "run_restore"]
