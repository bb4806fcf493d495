"""One error hierarchy. Each carries a readable message that is safe to store and show."""

from __future__ import annotations


class BackupApiError(Exception):
    """Base of every error we raise on purpose; ``message`` is user-facing."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(BackupApiError):
    """The configuration file or environment is invalid; raised at start."""


class SecretKeyError(ConfigError):
    """BACKUP_API_SECRET_KEY is missing or malformed, or cannot decrypt a stored secret."""


class BackupError(BackupApiError):
    """A backup could not be taken; the message is stored on the backup row."""


class DumpError(BackupError):
    """The dump tool failed, produced nothing, or could not be started."""


class StorageError(BackupError):
    """The storage backend refused or failed an operation."""


class ArtifactNotFound(StorageError):
    """The requested key does not exist in storage."""


class Cancelled(BackupApiError):
    """A job was stopped on request (``POST …/cancel``): neither a success nor a failure.

    Not a ``BackupError``: whoever catches failures must not record a cancel as one.
    """


class PackageError(BackupApiError):
    """A package could not be built; the message is stored on the package row."""


# What a service refuses, in the domain's words; ``api.errors`` answers each with its
# HTTP status, and the beat or the CLI can catch them like any other error.
class NotFound(BackupApiError):
    """The named row does not exist (or the id cannot name one)."""


class Conflict(BackupApiError):
    """The row's state forbids the operation now (running, managed by config, taken)."""


class Gone(BackupApiError):
    """The row exists but its artifact has vanished from storage."""


class Invalid(BackupApiError):
    """The request is well formed but its values cannot be used together."""


class Unavailable(BackupApiError):
    """A service the operation needs (the broker) did not answer; the row records it."""


def redact(text: str, secrets: list[str | None]) -> str:
    """Return ``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
