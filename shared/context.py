"""What one process needs at hand: settings, metadata DB and storage, built once."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import Settings, load_settings
from shared.metadata_db import MetadataDB
from shared.storage import Storage, make_storage


@dataclass
class Context:
    settings: Settings
    db: MetadataDB
    storage: Storage

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        return cls(settings=settings, db=MetadataDB(settings.runtime.database_url),
                   storage=make_storage(settings))


_current: Context | None = None


def current() -> Context:
    """Return this process's context, loading settings from the environment once."""
    global _current
    if _current is None:
        _current = Context.from_settings(load_settings())
    return _current
