"""Storage backends by name: ``local`` and ``s3``."""

from __future__ import annotations

from shared.config import Settings
from shared.storage.base import Storage, sidecar_key
from shared.storage.local import LocalStorage


def make_storage(settings: Settings) -> Storage:
    """Build the configured backend (the type was validated with the config)."""
    if settings.storage.type == "s3":
        from shared.storage.s3 import S3Storage

        assert settings.storage.s3 is not None
        return S3Storage(settings.storage.s3)
    return LocalStorage(settings.storage_path)


__all__ = ["LocalStorage", "Storage", "make_storage", "sidecar_key"]
