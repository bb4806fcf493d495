"""The storage contract every backend implements and passes the same test suite for.

Keys are relative, ``/``-separated paths such as ``pg_main/2026/11/26/pg_main-....dump.gz``.

Error meaning:
- ``ArtifactNotFound``: the key does not exist (``open``, ``size``).
- ``StorageError``: anything else the backend refused or failed; the message names
  the location (path, or bucket and endpoint) but never a secret.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, BinaryIO, Protocol

from shared.errors import ArtifactNotFound


class ArtifactWriter(Protocol):
    """What ``Storage.writer`` yields."""

    def write(self, data: bytes) -> Any: ...

    def set_metadata(self, metadata: Mapping[str, str]) -> None:
        """Attach small string metadata (e.g. checksums) to the object being written.

        May be called any time before the block ends, so values computed from the
        whole stream fit. S3 stores it as object metadata (``x-amz-meta-*``); local
        files have no such place and keep it only in the sidecar the caller writes.
        """


class Storage(ABC):
    """Where artifacts live. Writes are atomic: a key appears whole or not at all."""

    kind: str

    @abstractmethod
    def writer(self, key: str, size_hint: int | None = None
               ) -> AbstractContextManager[ArtifactWriter]:
        """Return a context manager yielding a writer for ``key``.

        The object becomes visible only when the block exits normally; on an
        exception nothing is left behind (no partial file, no multipart parts) and
        a previous object under ``key`` stays as it was. Writing an existing key
        replaces it. ``size_hint`` (expected bytes, may be rough) lets a backend
        size its parts; without it the backend still handles objects over 1 TB.
        """

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open ``key`` for streaming reads (``read(n)`` / ``close()``)."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Return the size in bytes of ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key`` and what a killed writer of it left (a temporary file, an
        unfinished multipart upload); a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield the keys under ``prefix`` (sorted), without temporary objects."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``StorageError`` saying what is wrong if the backend is unusable."""

    def free_bytes(self) -> int | None:
        """Return the free space where artifacts are written, or None if not ours to fill
        (an object store); checked before a backup (worker/bounds.py)."""
        return None

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ArtifactNotFound:
            return False
        return True

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as out:
            out.write(data)

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    # Sidecars: a small JSON document beside each artifact, so a backup can be found
    # and restored without the metadata DB.
    def write_sidecar(self, key: str, document: dict[str, Any]) -> None:
        self.put_bytes(sidecar_key(key), json.dumps(document, indent=2, sort_keys=True).encode())

    def delete_artifact(self, key: str) -> None:
        """Delete an artifact and its sidecar."""
        self.delete(key)
        self.delete(sidecar_key(key))


def sidecar_key(key: str) -> str:
    return key + ".json"
