"""Compressed artifacts carry their own check: damage in the middle fails decompression."""

from __future__ import annotations

import os
import subprocess
import zlib

import pytest
import zstandard

from shared.compression import make_compressor, make_decompressor


def _compress(name: str, data: bytes) -> bytes:
    compressor = make_compressor(name)
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
