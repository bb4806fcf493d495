"""MD5 and SHA-256 on threads of their own give the same digests, and leave no thread."""

from __future__ import annotations

import gc
import hashlib
import os
import threading

from shared.hashing import Digests


def _hash_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("hash-")]


def test_background_digests_equal_hashlib_over_many_chunks() -> None:
    before = len(_hash_threads())
    data = os.urandom(3 * 1024 * 1024 + 17)
    digests = Digests(background=True)
    for start in range(0, len(data), 100_000):
        digests.update(data[start:start + 100_000])
    digests.update(b"")
    assert digests.size == len(data)
    assert digests.md5 == hashlib.md5(data).hexdigest()
    assert digests.sha256 == hashlib.sha256(data).hexdigest()
    assert len(_hash_threads()) == before  # reading a digest ended its threads


def test_an_abandoned_stream_leaves_no_hashing_thread() -> None:
    before = len(_hash_threads())
    digests = Digests(background=True)
    digests.update(b"x" * 1_000_000)
    assert len(_hash_threads()) == before + 2
    del digests  # a failed backup drops its digests half way
    gc.collect()
    for thread in _hash_threads():
        thread.join(5)
    assert len(_hash_threads()) == before
