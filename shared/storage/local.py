"""Local filesystem storage: files under one root directory, written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from shared.errors import ArtifactNotFound, StorageError
from shared.storage.base import Storage

_TMP_PREFIX = ".tmp-"


class LocalStorage(Storage):
    kind = "local"

    def __init__(self, root: str) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise StorageError(f"invalid storage key {key!r}")
        return path

    @contextmanager
    def writer(self, key: str, size_hint: int | None = None) -> Iterator[_FileWriter]:
        """Write to a temporary file beside the target, fsync, then rename over it."""
        path = self._path(key)
        try:
            # 0700 and (mkstemp) 0600: an artifact is its user's alone, umask or not.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Named after the key, so delete() can find what a killed writer left.
            fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{path.name}.", dir=path.parent)
        except OSError as exc:
            raise StorageError(f"cannot write under {path.parent}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "wb") as handle:
                yield _FileWriter(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StorageError(f"cannot write {path}: {exc.strerror}") from exc
            raise

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"artifact {key} not found in {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key} in {self.root}: {exc.strerror}") from exc

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise ArtifactNotFound(f"artifact {key} not found in {self.root}") from exc

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            for partial in path.parent.glob(f"{_TMP_PREFIX}{path.name}.*"):
                partial.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {path}: {exc.strerror}") from exc
        # Drop directories the deletion left empty, up to the root.
        for parent in path.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def list(self, prefix: str = "") -> Iterator[str]:
        if not self.root.exists():
            return iter(())
        keys = []
        for dirpath, _, filenames in os.walk(self.root):
            for filename in filenames:
                if filename.startswith(_TMP_PREFIX):
                    continue
                key = Path(dirpath, filename).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def free_bytes(self) -> int | None:
        """Return the free bytes of the file system holding the root (or its nearest
        existing parent, before the first backup creates it)."""
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            return shutil.disk_usage(path).free
        except OSError as exc:
            raise StorageError(f"cannot read the free space of {path}: {exc.strerror}"
                               ) from exc

    def check(self) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {self.root}: {exc.strerror}") from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"{self.root} is not writable")


class _FileWriter:
    """The temporary file, written through; metadata lives in the sidecar only."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle

    def write(self, data: bytes) -> int:
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()

    def set_metadata(self, metadata: Mapping[str, str]) -> None:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
