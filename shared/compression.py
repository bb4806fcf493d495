"""Streaming compressors, by name. Each turns chunks into compressed chunks."""

from __future__ import annotations

import zlib
from typing import Protocol

import zstandard


class Compressor(Protocol):
    """Feed chunks to ``compress``; call ``flush`` once at the end for the tail."""

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _gzip() -> Compressor:
    # wbits=31 writes a gzip container, readable by gunzip and Python's gzip module.
    return zlib.compressobj(6, zlib.DEFLATED, 31)


def _zstd() -> Compressor:
    # A frame checksum (as the zstd command writes), so decompression itself catches damage.
    return zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()


_FACTORIES = {"gzip": _gzip, "zstd": _zstd, "none": _Identity}
EXTENSIONS = {"gzip": ".gz", "zstd": ".zst", "none": ""}


def make_compressor(name: str) -> Compressor:
    """Return a fresh compressor; ``name`` was validated with the config."""
    return _FACTORIES[name]()


class Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


class _IdentityDecompressor:
    def decompress(self, data: bytes) -> bytes:
        return data


def make_decompressor(name: str) -> Decompressor:
    """Return a streaming decompressor for artifacts written with ``name``."""
    if name == "gzip":
        return zlib.decompressobj(31)
    if name == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    return _IdentityDecompressor()
