"""One error hierarchy. Each carries a readable message that is safe to store and show."""

from __future__ import annotations


class BackupApiError(Exception):
    """Base of every error we raise on purpose; ``message`` is user-facing."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(BackupApiError):
    """The configuration file or environment is invalid; raised at start."""


class BackupError(BackupApiError):
    """A backup could not be taken; the message is stored on the backup row."""


class DumpError(BackupError):
    """The dump tool failed, produced nothing, or could not be started."""


class StorageError(BackupError):
    """The storage backend refused or failed an operation."""


class ArtifactNotFound(StorageError):
    """The requested key does not exist in storage."""


class PackageError(BackupApiError):
    """A package could not be built; the message is stored on the package row."""


def redact(text: str, secrets: list[str | None]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
