"""MD5 and SHA-256 of a stream, computed as it passes."""

from __future__ import annotations

import hashlib


class Digests:
    """Both checksums the contract records, plus the byte count."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes) -> None:
        self._md5.update(data)
        self._sha256.update(data)
        self.size += len(data)

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()
