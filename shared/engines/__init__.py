"""Dump engines by name."""

from __future__ import annotations

from shared.engines.base import DumpCommand, Engine, Target, run_dump, run_restore
from shared.engines.postgres import PostgresEngine


def get_engine(name: str) -> Engine:
    """Return the engine for ``name`` (validated with the config or the API)."""
    if name == "postgres":
        return PostgresEngine()
    raise KeyError(name)


__all__ = ["DumpCommand", "Engine", "Target", "get_engine", "run_dump", "run_restore"]
