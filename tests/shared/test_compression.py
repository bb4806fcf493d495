"""Compressed artifacts carry their own check: damage in the middle fails decompression."""

from __future__ import annotations

import os
import subprocess
import zlib

import pytest
import zstandard

from shared.compression import make_compressor, make_decompressor


def _compress(name: str, data: bytes, threads: int = 0) -> bytes:
    compressor = make_compressor(name, zstd_threads=threads)
    return b"".join(compressor.compress(data[i:i + 65536])
                    for i in range(0, len(data), 65536)) + compressor.flush()


@pytest.mark.parametrize("name", ["gzip", "zstd"])
def test_a_flipped_byte_in_the_middle_fails_decompression(name: str) -> None:
    data = os.urandom(2 * 1024 * 1024)
    damaged = bytearray(_compress(name, data))
    damaged[len(damaged) // 2] ^= 0x01
    with pytest.raises((zlib.error, zstandard.ZstdError)):
        make_decompressor(name).decompress(bytes(damaged))


@pytest.mark.parametrize("name", ["gzip", "zstd", "none"])
def test_a_round_trip_gives_the_bytes_back(name: str) -> None:
    data = os.urandom(300_000) * 3
    assert make_decompressor(name).decompress(_compress(name, data)) == data


def test_zstd_artifacts_are_checked_by_the_zstd_command(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "a.zst")
    with open(path, "wb") as handle:
        handle.write(_compress("zstd", b"backup" * 100_000))
    listing = subprocess.run(["zstd", "-lv", path], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "Check: XXH64" in listing.stdout


def _text(size: int) -> bytes:
    """Compressible but not trivially so: several of zstd's multi-threaded jobs."""
    block = os.urandom(256 * 1024).hex().encode()
    return b"".join(block[n * 997:] + block[:n * 997] for n in range(size // len(block) + 1))[:size]


@pytest.mark.parametrize("threads", [1, -1])
def test_zstd_with_threads_writes_one_checked_frame(threads: int,
                                                    tmp_path: os.PathLike[str]) -> None:
    data = _text(40 * 1024 * 1024)
    stored = _compress("zstd", data, threads=threads)
    assert make_decompressor("zstd").decompress(stored) == data
    path = os.path.join(tmp_path, "a.zst")
    with open(path, "wb") as handle:
        handle.write(stored)
    listing = subprocess.run(["zstd", "-lv", path], capture_output=True, text=True)
    assert listing.returncode == 0, listing.stderr
    assert "# Zstandard Frames: 1" in listing.stdout and "Check: XXH64" in listing.stdout
    # Damage in the middle of the frame: the decompressor refuses it, as zstd -t does.
    damaged = bytearray(stored)
    damaged[len(damaged) // 2] ^= 0x01
    with pytest.raises(zstandard.ZstdError):
        make_decompressor("zstd").decompress(bytes(damaged))
    with open(path, "wb") as handle:
        handle.write(damaged)
    assert subprocess.run(["zstd", "-tq", path], capture_output=True).returncode != 0


def test_zstd_level_changes_the_output_and_not_the_reader() -> None:
    data = b"".join(b"row %d of the dump, %d words\n" % (n, n % 977) for n in range(200_000))
    fast = _compress_level(data, 1)
    small = _compress_level(data, 12)
    assert len(small) < len(fast)
    assert make_decompressor("zstd").decompress(small) == data


def _compress_level(data: bytes, level: int) -> bytes:
    compressor = make_compressor("zstd", zstd_level=level)
    return compressor.compress(data) + compressor.flush()
