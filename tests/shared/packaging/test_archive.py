"""The streaming archive writers, read back with the standard library."""

from __future__ import annotations

import bisect
import gc
import io
import os
import struct
import tarfile
import zipfile
from datetime import UTC, datetime

import pytest

from shared.packaging.archive import FORMATS, open_archive

WHEN = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


class WriteOnlySink:
    """Like an S3 upload: write() only, no tell/seek, so nothing can be patched later."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.buffer.write(data)


def _read_members(fmt: str, data: bytes) -> dict[str, bytes]:
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            assert archive.testzip() is None
            return {name: archive.read(name) for name in archive.namelist()}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive  # type: ignore[union-attr]
                if m.isfile()}


@pytest.mark.parametrize("fmt", FORMATS)
def test_members_round_trip_through_a_write_only_sink(fmt: str) -> None:
    sink = WriteOnlySink()
    big = os.urandom(3 * 1024 * 1024 + 17)  # several chunks, not a multiple of any block
    text = b"CREATE TABLE t (x int);\n" * 10000
    archive = open_archive(fmt, sink)
    archive.add_bytes("manifest.json", b'{"ok": true}', WHEN)
    archive.add_file("a.dump.gz", len(big), io.BytesIO(big), WHEN, compress=False)
    archive.add_file("b.dump", len(text), io.BytesIO(text), WHEN, compress=True)
    archive.close()

    members = _read_members(fmt, sink.buffer.getvalue())
    assert list(members) == ["manifest.json", "a.dump.gz", "b.dump"]
    assert members["a.dump.gz"] == big and members["b.dump"] == text
    assert sink.writes > 3  # streamed in pieces, not assembled in memory and written once


def test_zip_members_are_stored_or_deflated_as_asked() -> None:
    sink = WriteOnlySink()
    text = b"x" * 100000
    archive = open_archive("zip", sink)
    archive.add_file("stored", len(text), io.BytesIO(text), WHEN, compress=False)
    archive.add_file("deflated", len(text), io.BytesIO(text), WHEN, compress=True)
    archive.close()
    with zipfile.ZipFile(io.BytesIO(sink.buffer.getvalue())) as zf:
        assert zf.getinfo("stored").compress_type == zipfile.ZIP_STORED
        assert zf.getinfo("deflated").compress_type == zipfile.ZIP_DEFLATED
        assert zf.getinfo("deflated").compress_size < 1000


def test_zip_uses_zip64_for_a_member_declared_above_4_gib() -> None:
    """A streamed member cannot widen its header later, so zip64 is decided up front.

    The declared size (the backup row's) drives the decision; the bytes written are
    few so the test stays fast. Without zip64 zipfile would raise when closing a
    member past 4 GiB ("File size too large, try using force_zip64").
    """
    sink = WriteOnlySink()
    archive = open_archive("zip", sink)
    archive.add_file("huge", 5 * 1024**3, io.BytesIO(b"tiny"), WHEN, compress=False)
    archive.add_file("small", 4, io.BytesIO(b"tiny"), WHEN, compress=False)
    archive.close()
    raw = sink.buffer.getvalue()
    assert _local_header_has_zip64(raw, 0)
    second = raw.index(b"PK\x03\x04", 4)
    assert not _local_header_has_zip64(raw, second)
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.read("huge") == b"tiny" and zf.read("small") == b"tiny"


def _local_header_has_zip64(raw: bytes, offset: int) -> bool:
    name_len, extra_len = struct.unpack("<HH", raw[offset + 26:offset + 30])
    extra = raw[offset + 30 + name_len:offset + 30 + name_len + extra_len]
    return extra[:2] == struct.pack("<H", 0x0001)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_aborted_archive_writes_nothing_more(fmt: str) -> None:
    sink = WriteOnlySink()
    archive = open_archive(fmt, sink)
    archive.add_bytes("manifest.json", b"{}", WHEN)
    archive.abort()
    before = sink.buffer.getvalue()
    del archive
    gc.collect()  # zipfile and tarfile flush their trailers when collected
    assert sink.buffer.getvalue() == before


def test_tar_member_shorter_than_declared_is_an_error() -> None:
    archive = open_archive("tar.gz", WriteOnlySink())
    with pytest.raises(OSError, match="unexpected end of data"):
        archive.add_file("short", 100, io.BytesIO(b"only ten b"), WHEN, compress=False)


MIB = 1024 * 1024
ZERO = bytes(MIB)


class _Zeros:
    """``size`` zero bytes, handed out as one shared 1 MiB object (no memory per read)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = min(n if n >= 0 else MIB, self.left)
        self.left -= n
        return ZERO if n == MIB else bytes(n)


class _SegmentSink:
    """Keep references to the written chunks: 4 GiB of shared zero chunks costs ~nothing."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.chunks: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self.starts.append(self.size)
        self.chunks.append(data)
        self.size += len(data)


class _SegmentReader(io.RawIOBase):
    """A seekable file over the sink's chunks, for zipfile to read the archive back."""

    def __init__(self, sink: _SegmentSink) -> None:
        self.sink = sink
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.sink.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self.sink.size - self.pos)
        done = 0
        while done < wanted:
            index = bisect.bisect_right(self.sink.starts, self.pos) - 1
            chunk, inner = self.sink.chunks[index], self.pos - self.sink.starts[index]
            take = min(wanted - done, len(chunk) - inner)
            buffer[done:done + take] = chunk[inner:inner + take]
            done += take
            self.pos += take
        return wanted


@pytest.mark.slow
def test_zip_member_over_4_gib_streams_and_reads_back() -> None:
    """A real member past 4 GiB, then one whose offset is past 4 GiB (about 10 s)."""
    size = 4 * 1024**3 + 5 * MIB + 123
    sink = _SegmentSink()
    archive = open_archive("zip", sink)
    archive.add_file("huge.dump.gz", size, _Zeros(size), WHEN, compress=False)
    archive.add_bytes("after.json", b'{"after": true}', WHEN)
    archive.close()

    with zipfile.ZipFile(io.BufferedReader(_SegmentReader(sink), MIB)) as zf:  # type: ignore[type-var]
        assert zf.getinfo("huge.dump.gz").file_size == size
        assert zf.getinfo("after.json").header_offset > zipfile.ZIP64_LIMIT
        assert zf.read("after.json") == b'{"after": true}'
        total = 0
        with zf.open("huge.dump.gz") as member:  # zipfile checks the CRC at the end
            while data := member.read(MIB):
                total += len(data)
        assert total == size
