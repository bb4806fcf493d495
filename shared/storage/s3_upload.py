"""Streaming multipart upload to S3: at most one part buffered while it fills.

The writer sends each part as soon as it is full (up to ``concurrency`` parts in
flight, so hashing and compressing overlap the network), publishes the object with
``CompleteMultipartUpload`` on success and aborts the upload on any error, so no
orphaned parts and no object are left. An object smaller than one part is sent with
a single ``PutObject`` at the end, which is atomic too.
"""

from __future__ import annotations

import io
import logging
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import accumulate
from typing import Any

from boto3.s3.transfer import TransferConfig

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_PART_SIZE = 5 * MiB  # S3's floor for every part but the last
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 * MiB
# Without a size hint the part size grows by one base step every GROWTH_EVERY parts:
# 8 MiB parts cover the first 1.9 GiB, and 10,000 parts hold ~1.6 TiB (a 1 TB backup
# ends near part 7,750 with 248 MiB parts). Small backups keep small buffers.
GROWTH_EVERY = 250
# Bytes of parts being sent at once, beside the one filling: two 8 MiB parts overlap
# hashing with the network; once parts grow, one at a time keeps memory bounded.
IN_FLIGHT_BYTES = 16 * MiB
# CopyObject copies at most 5 GiB in one request; above it s3transfer copies in parts.
COPY_THRESHOLD = 5 * GiB

Describe = Callable[[BaseException, str], Exception]


def part_size(number: int, base: int = DEFAULT_PART_SIZE, size_hint: int | None = None) -> int:
    """Return the size of part ``number`` (1-based) of an upload.

    ``size_hint`` (expected total bytes) raises the base so that the object fits
    in well under 10,000 parts even if the hint is low by a third.
    """
    if size_hint:
        base = max(base, -(-size_hint // (MAX_PARTS * 2 // 3)))
    base = max(MIN_PART_SIZE, -(-base // MiB) * MiB)
    return min(MAX_PART_SIZE, base * (1 + (number - 1) // GROWTH_EVERY))


class ChunksReader(io.RawIOBase):
    """A seekable file over a list of chunks, so a part is sent without a joined copy.

    botocore reads a body more than once (payload signing, retries), hence ``seek``.
    """

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks
        self._starts = list(accumulate((len(c) for c in chunks), initial=0))
        self._size = self._starts[-1]
        self._pos = 0

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = min(max(0, base + offset), self._size)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        written = 0
        index = bisect_right(self._starts, self._pos) - 1
        while written < len(view) and self._pos < self._size:
            chunk = self._chunks[index]
            offset = self._pos - self._starts[index]
            count = min(len(chunk) - offset, len(view) - written)
            view[written:written + count] = memoryview(chunk)[offset:offset + count]
            written += count
            self._pos += count
            index += 1
        return written


class MultipartWriter:
    """File-like sink for one key; call :meth:`publish` or :meth:`abort` exactly once."""

    def __init__(self, client: Any, bucket: str, key: str, extra_args: Mapping[str, str],
                 describe: Describe, *, base_part_size: int = DEFAULT_PART_SIZE,
                 size_hint: int | None = None, concurrency: int = 2,
                 copy_metadata: bool = True) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._extra = dict(extra_args)
        self._describe = describe
        self._base = base_part_size
        self._hint = size_hint
        self._concurrency = concurrency
        self._copy_metadata = copy_metadata
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: deque[Future[dict[str, Any]]] = deque()
        self._parts: list[dict[str, Any]] = []
        self._submitted = 0
        self._metadata: dict[str, str] = {}

    def write(self, data: bytes) -> int:
        if data:
            self._chunks.append(bytes(data))
            self._buffered += len(data)
            if self._buffered >= part_size(self._submitted + 1, self._base, self._hint):
                self._send_part()
        return len(data)

    def flush(self) -> None:
        """Do nothing: parts go out when full; ``publish`` sends the rest."""

    def set_metadata(self, metadata: Mapping[str, str]) -> None:
        """Store ``metadata`` (small strings, e.g. checksums) with the published object."""
        self._metadata.update(metadata)

    def publish(self) -> None:
        """Make the object visible: one PutObject, or complete the multipart upload."""
        try:
            if self._upload_id is None:
                self._call("put_object", Body=self._take(), Metadata=self._metadata,
                           **self._extra)
                return
            if self._buffered:
                self._send_part()
            while self._in_flight:
                self._parts.append(self._in_flight.popleft().result())
            self._call("complete_multipart_upload", UploadId=self._upload_id,
                       MultipartUpload={"Parts": self._parts})
            self._upload_id = None
        except BaseException as exc:
            self.abort()
            if not isinstance(exc, Exception):
                raise
            raise self._describe(exc, f"cannot upload {self._key}") from exc
        finally:
            self._shutdown()
        if self._metadata and self._copy_metadata:
            self._apply_metadata()

    def abort(self) -> None:
        """Drop what was buffered and abort the multipart upload, if one was started."""
        self._chunks.clear()
        self._buffered = 0
        # Let parts already being sent finish first: an abort racing an UploadPart
        # could leave that part behind.
        for future in self._in_flight:
            future.cancel()
        self._shutdown()
        self._in_flight.clear()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._call("abort_multipart_upload", UploadId=upload_id)
            except Exception as exc:  # noqa: BLE001 - the original error matters more
                log.error("could not abort the multipart upload of %s: %s", self._key,
                          self._describe(exc, "abort failed"))

    # --- internals -------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        result: dict[str, Any] = getattr(self._client, operation)(
            Bucket=self._bucket, Key=self._key, **kwargs)
        return result

    def _take(self) -> ChunksReader:
        body = ChunksReader(self._chunks)
        self._chunks = []
        self._buffered = 0
        return body

    def _send_part(self) -> None:
        try:
            if self._upload_id is None:
                self._upload_id = self._call("create_multipart_upload", **self._extra)["UploadId"]
                self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="s3-part")
            # Bound memory: wait for the oldest part before buffering another.
            size = part_size(self._submitted + 1, self._base, self._hint)
            limit = max(1, min(self._concurrency, IN_FLIGHT_BYTES // size))
            while len(self._in_flight) >= limit:
                self._parts.append(self._in_flight.popleft().result())
        except Exception as exc:
            raise self._describe(exc, f"cannot upload {self._key}") from exc
        self._submitted += 1
        assert self._pool is not None
        self._in_flight.append(self._pool.submit(self._upload_part, self._submitted,
                                                 self._take()))

    def _upload_part(self, number: int, body: ChunksReader) -> dict[str, Any]:
        response = self._call("upload_part", UploadId=self._upload_id, PartNumber=number,
                              Body=body)
        return {"PartNumber": number, "ETag": response["ETag"]}

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _apply_metadata(self) -> None:
        """Set metadata known only at the end by copying the object onto itself.

        CreateMultipartUpload fixes metadata before the first part, when the
        checksums are not known yet. The copy is server-side but rewrites the data
        (AWS always; MinIO for an object uploaded in parts); if it fails the object
        is removed, so a failed write leaves nothing.
        """
        source = {"Bucket": self._bucket, "Key": self._key}
        extra = {"Metadata": self._metadata, "MetadataDirective": "REPLACE", **self._extra}
        try:
            self._client.copy(source, self._bucket, self._key, ExtraArgs=extra,
                              Config=TransferConfig(multipart_threshold=COPY_THRESHOLD,
                                                    multipart_chunksize=512 * MiB))
        except Exception as exc:
            try:
                self._call("delete_object")
            except Exception:  # noqa: BLE001
                log.error("could not remove %s after its metadata copy failed", self._key)
            raise self._describe(exc, f"cannot set metadata on {self._key}") from exc
