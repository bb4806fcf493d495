"""Pure parts of the pipeline: storage keys and compressors."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest
import zstandard

from shared.compression import make_compressor
from shared.hashing import Digests
from worker.backup import artifact_key


def test_artifact_key_tells_database_date_and_format() -> None:
    when = datetime(2026, 11, 26, 3, 0, 5, tzinfo=UTC)
    key = artifact_key("pg_main", "postgres", "gzip", "0123456789abcdef", when)
    assert key == "pg_main/2026/11/26/pg_main-20261126T030005Z-01234567.dump.gz"
    assert artifact_key("m", "mongodb", "zstd", "abcdef0123", when).endswith(".archive.zst")
    assert artifact_key("m", "postgres", "none", "abcdef0123", when).endswith(".dump")


@pytest.mark.parametrize("name", ["gzip", "zstd", "none"])
def test_compressors_round_trip_in_chunks(name: str) -> None:
    payload = b"".join(bytes([i % 251]) * 1000 for i in range(3000))
    compressor = make_compressor(name)
    out = b"".join(compressor.compress(payload[i:i + 65536])
                   for i in range(0, len(payload), 65536)) + compressor.flush()
    decoded = {"gzip": gzip.decompress,
               "zstd": lambda d: zstandard.ZstdDecompressor().decompressobj().decompress(d),
               "none": lambda d: d}[name](out)
    assert decoded == payload


def test_digests_match_hashlib() -> None:
    digests = Digests()
    digests.update(b"hello ")
    digests.update(b"world")
    assert digests.md5 == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    assert digests.sha256.startswith("b94d27b9934d3e08")
    assert digests.size == 11
