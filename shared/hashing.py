"""MD5 and SHA-256 of a stream, computed as it passes."""

from __future__ import annotations

import hashlib
import queue
import threading
import weakref
from typing import Any

# Chunks waiting for a hashing thread: with 1 MiB chunks, a few MiB per hash.
DEPTH = 8


class Digests:
    """Both checksums the contract records, plus the byte count.

    ``background=True`` hashes on two threads of its own (hashlib lets go of the GIL
    on large buffers), so ``update`` returns at once and the caller goes back to
    reading the dump while MD5 and SHA-256 run on other cores. ``md5`` and ``sha256``
    wait for the chunks handed over so far. The threads end with the object (or at
    ``close``), also when the stream is abandoned half way.
    """

    def __init__(self, *, background: bool = False) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self.size = 0
        self._threads: list[_HashThread] = []
        if background:
            self._threads = [_HashThread(self._md5), _HashThread(self._sha256)]
            weakref.finalize(self, _stop, self._threads)

    def update(self, data: bytes) -> None:
        self.size += len(data)
        if not self._threads:
            self._md5.update(data)
            self._sha256.update(data)
            return
        if not data:
            return
        chunk = bytes(data)  # the caller may reuse a mutable buffer
        for thread in self._threads:
            thread.put(chunk)

    def close(self) -> None:
        """Wait for the hashing threads to hash what they were given, and end them."""
        _stop(self._threads)

    @property
    def md5(self) -> str:
        self.close()
        return self._md5.hexdigest()

    @property
    def sha256(self) -> str:
        self.close()
        return self._sha256.hexdigest()


class _HashThread:
    """One hash object fed from a bounded queue by its own thread."""

    def __init__(self, digest: Any) -> None:
        self._inbox: queue.Queue[bytes | None] = queue.Queue(maxsize=DEPTH)
        self._thread = threading.Thread(target=self._run, args=(digest,),
                                        name=f"hash-{digest.name}", daemon=True)
        self._thread.start()

    def _run(self, digest: Any) -> None:
        while (chunk := self._inbox.get()) is not None:
            digest.update(chunk)

    def put(self, chunk: bytes) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the hashing thread has ended: no more updates")
        self._inbox.put(chunk)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join()


def _stop(threads: list[_HashThread]) -> None:
    for thread in threads:
        thread.stop()
