"""Streaming archive writers (``zip``, ``tar.gz``) onto a write-only byte sink.

Neither writer seeks, so the sink can be a storage writer (a local file or an S3
multipart upload) and a package is never staged on disk or held in memory:

- ``zip``: every member carries a data descriptor (its CRC and sizes follow the
  data). Zip64 records are forced for members whose declared size is near 4 GiB,
  because a streamed member cannot go back to widen its header.
- ``tar.gz``: tarfile's stream mode (``w|``) through our own gzip compressor. A tar
  header holds the member's size, so the caller declares it up front (the backup
  row's ``size_bytes``) and the source must deliver exactly that many bytes.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
import zlib
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Protocol

CHUNK = 1024 * 1024
# Stay below the 4 GiB zip limit with room for a deflated member growing a little.
ZIP64_THRESHOLD = int(zipfile.ZIP64_LIMIT / 1.05)
FORMATS = ("zip", "tar.gz")
EXTENSIONS = {"zip": ".zip", "tar.gz": ".tar.gz"}
MEDIA_TYPES = {"zip": "application/zip", "tar.gz": "application/gzip"}


class Sink(Protocol):
    def write(self, data: bytes) -> Any: ...


class Source(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class _WriteOnly:
    """Hide everything but ``write`` so that no writer is tempted to seek back.

    Once detached it drops writes: zipfile and tarfile write their trailers when
    garbage-collected, and an abandoned archive's sink is already gone by then.
    """

    def __init__(self, sink: Sink) -> None:
        self._sink: Sink | None = sink

    def write(self, data: bytes) -> int:
        if self._sink is not None:
            self._sink.write(bytes(data))
        return len(data)

    def detach(self) -> None:
        self._sink = None

    def close(self) -> None:
        """Close nothing: the storage writer owns the sink."""

    def flush(self) -> None:
        """Flush nothing: the storage writer publishes the bytes when it closes."""


class ArchiveWriter(ABC):
    """Append members one after the other, then ``close`` to write the trailer."""

    def __init__(self, sink: Sink) -> None:
        self._out = _WriteOnly(sink)

    @abstractmethod
    def add_file(self, name: str, size: int, source: Source, mtime: datetime,
                 *, compress: bool) -> None:
        """Copy ``size`` bytes of ``source`` into member ``name``.

        ``compress`` asks for deflate inside a zip (pointless for members that are
        already gzip or zstd streams); a tar.gz compresses everything anyway.
        """

    def add_bytes(self, name: str, data: bytes, mtime: datetime) -> None:
        """Add a small in-memory member (the manifest)."""
        self.add_file(name, len(data), io.BytesIO(data), mtime, compress=True)

    @abstractmethod
    def close(self) -> None:
        """Write the end of the archive (central directory, or tar end blocks)."""

    def abort(self) -> None:
        """Abandon the archive: nothing more reaches the sink."""
        self._out.detach()


class ZipWriter(ArchiveWriter):
    def __init__(self, sink: Sink) -> None:
        super().__init__(sink)
        self._zip = zipfile.ZipFile(self._out, mode="w", allowZip64=True)

    def add_file(self, name: str, size: int, source: Source, mtime: datetime,
                 *, compress: bool) -> None:
        info = zipfile.ZipInfo(name, date_time=mtime.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.file_size = size
        info.external_attr = 0o644 << 16
        with self._zip.open(info, "w", force_zip64=size > ZIP64_THRESHOLD) as member:
            while data := source.read(CHUNK):
                member.write(data)

    def close(self) -> None:
        self._zip.close()


class _GzipSink:
    """Compress what tarfile writes into a gzip stream on ``sink``."""

    def __init__(self, sink: Sink, level: int) -> None:
        self._sink = sink
        # wbits=31: a gzip container, readable by gunzip and tarfile's "r:gz".
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        out = self._compressor.compress(data)
        if out:
            self._sink.write(out)
        return len(data)

    def close(self) -> None:
        self._sink.write(self._compressor.flush())


class TarGzWriter(ArchiveWriter):
    def __init__(self, sink: Sink, level: int = 6) -> None:
        super().__init__(sink)
        self._gzip = _GzipSink(self._out, level)
        # A large bufsize: tarfile's stream buffer re-slices itself per bufsize block.
        # open() passes copybufsize on to TarFile; typeshed's overloads omit it.
        self._tar = tarfile.open(  # type: ignore[call-overload]
            fileobj=self._gzip, mode="w|", bufsize=CHUNK, copybufsize=CHUNK,
            format=tarfile.PAX_FORMAT)

    def add_file(self, name: str, size: int, source: Source, mtime: datetime,
                 *, compress: bool) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = int(mtime.timestamp())
        info.mode = 0o644
        self._tar.addfile(info, source)

    def close(self) -> None:
        self._tar.close()
        self._gzip.close()


def open_archive(fmt: str, sink: Sink, *, gzip_level: int = 6) -> ArchiveWriter:
    """Return a writer of format ``fmt`` (``zip`` or ``tar.gz``) onto ``sink``."""
    if fmt == "zip":
        return ZipWriter(sink)
    if fmt == "tar.gz":
        return TarGzWriter(sink, gzip_level)
    raise ValueError(f"unknown package format {fmt!r}")
