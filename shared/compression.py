"""Streaming compressors, by name. Each turns chunks into compressed chunks."""

from __future__ import annotations

import zlib
from typing import Protocol

import zstandard

# zstd's own default level (what `zstd` without -# uses).
ZSTD_DEFAULT_LEVEL = 3


class Compressor(Protocol):
    """Feed chunks to ``compress``; call ``flush`` once at the end for the tail."""

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _gzip(level: int, threads: int) -> Compressor:
    # wbits=31 writes a gzip container, readable by gunzip and Python's gzip module.
    # Level 6 is gzip's default; the zstd settings do not apply.
    return zlib.compressobj(6, zlib.DEFLATED, 31)


def _zstd(level: int, threads: int) -> Compressor:
    """Return a zstd compressor; ``threads`` > 0 (or -1: one per core) runs it on zstd's
    own worker threads, beside the thread that feeds it.

    With threads the output is still one frame, with its checksum (as the zstd command
    writes), so decompression itself catches damage; `zstd -T0` writes the same kind.
    """
    return zstandard.ZstdCompressor(level=level, threads=threads,
                                    write_checksum=True).compressobj()


def _none(level: int, threads: int) -> Compressor:
    return _Identity()


_FACTORIES = {"gzip": _gzip, "zstd": _zstd, "none": _none}
EXTENSIONS = {"gzip": ".gz", "zstd": ".zst", "none": ""}


def make_compressor(name: str, *, zstd_level: int = ZSTD_DEFAULT_LEVEL,
                    zstd_threads: int = 0) -> Compressor:
    """Return a fresh compressor; ``name`` and the zstd settings were validated with the
    config (``global.zstd_level``, ``global.zstd_threads``)."""
    return _FACTORIES[name](zstd_level, zstd_threads)


class Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


class _IdentityDecompressor:
    def decompress(self, data: bytes) -> bytes:
        return data


def make_decompressor(name: str) -> Decompressor:
    """Return a streaming decompressor for artifacts written with ``name``.

    Level and threads leave no trace a reader needs: any zstd artifact, written with
    threads or not, is one checksummed frame.
    """
    if name == "gzip":
        return zlib.decompressobj(31)
    if name == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    return _IdentityDecompressor()
