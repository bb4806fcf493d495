"""Streaming multipart upload to S3: several parts in flight, memory bounded.

``write`` only copies into the part filling: a full part is handed to a small thread
pool and the caller goes on at once, so the dump, the hashing and the network overlap.
At most ``concurrency`` parts (and at most ``IN_FLIGHT_BYTES``) are being sent at a
time, beside the one filling; when that many are out, ``write`` waits for one to
finish. Part buffers are allocated once and reused, so memory is bounded by
(parts in flight + 1) × part size whatever the backup size, without the heap growing
from one part to the next. A part that fails fails the next ``write`` (not the end of a
long dump), and the upload is aborted: no orphaned parts, no object. ``publish``
completes the upload; an object smaller than one part is sent with a single
``PutObject`` at the end, which is atomic too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
# Parts being sent at once. Four 8 MiB parts keep a local MinIO and a remote store busy
# while the next one fills; more only adds memory on the 2-4 cores a worker usually has.
DEFAULT_CONCURRENCY = 4
# ...and at most this many bytes of them: once parts grow past 8 MiB fewer are in
# flight (one when they are over 16 MiB), so memory stays bounded for a 1 TB backup.
IN_FLIGHT_BYTES = 32 * MiB
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


def parts_in_flight(size: int, concurrency: int = DEFAULT_CONCURRENCY) -> int:
    """Return how many parts of ``size`` bytes may be sent at once (at least one)."""
    return max(1, min(concurrency, IN_FLIGHT_BYTES // size))


class MultipartWriter:
    """File-like sink for one key; call :meth:`publish` or :meth:`abort` exactly once."""

    def __init__(self, client: Any, bucket: str, key: str, extra_args: Mapping[str, str],
                 describe: Describe, *, base_part_size: int = DEFAULT_PART_SIZE,
                 size_hint: int | None = None, concurrency: int = DEFAULT_CONCURRENCY,
                 copy_metadata: bool = False) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._extra = dict(extra_args)
        self._describe = describe
        self._base = base_part_size
        self._hint = size_hint
        self._concurrency = concurrency
        self._copy_metadata = copy_metadata
        # The part filling, and buffers of sent parts ready for reuse.
        self._part = bytearray()
        self._buffered = 0
        self._spare: list[bytearray] = []
        self._upload_id: str | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: dict[Future[dict[str, Any]], bytearray] = {}
        self._parts: list[dict[str, Any]] = []
        self._submitted = 0
        self._metadata: dict[str, str] = {}

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        while view:
            if self._buffered == len(self._part):
                if self._part:  # full: send it (the first call has nothing yet)
                    self._send_part()
                self._part = self._buffer(part_size(self._submitted + 1, self._base,
                                                    self._hint))
            count = min(len(view), len(self._part) - self._buffered)
            self._part[self._buffered:self._buffered + count] = view[:count]
            self._buffered += count
            view = view[count:]
        return len(data)

    def flush(self) -> None:
        """Do nothing: parts go out when full; ``publish`` sends the rest."""

    def set_metadata(self, metadata: Mapping[str, str]) -> None:
        """Store ``metadata`` (small strings, e.g. checksums) with the published object.

        Free for an object sent in one ``PutObject``; a multipart object gets it only
        with ``copy_metadata`` (a server-side copy, see :meth:`_apply_metadata`).
        """
        self._metadata.update(metadata)

    def publish(self) -> None:
        """Make the object visible: one PutObject, or complete the multipart upload."""
        try:
            if self._upload_id is None:
                self._call("put_object", Body=self._take(), Metadata=self._metadata,
                           **self._extra)
                return
            if self._buffered:
                del self._part[self._buffered:]  # the last part is shorter
                self._send_part()
            self._harvest(until=0)
            self._call("complete_multipart_upload", UploadId=self._upload_id,
                       MultipartUpload={"Parts": sorted(self._parts,
                                                        key=lambda p: p["PartNumber"])})
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
        self._part, self._spare = bytearray(), []
        self._buffered = 0
        # Parts not started are cancelled; parts being sent finish first, since an
        # abort racing an UploadPart could leave that part behind.
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

    def _take(self) -> bytes:
        """Return what was written, for an object sent in one ``PutObject``."""
        data = bytes(memoryview(self._part)[:self._buffered])
        self._part, self._buffered = bytearray(), 0
        return data

    def _buffer(self, size: int) -> bytearray:
        """Return a part buffer of ``size`` bytes: a spare one, else a new one."""
        while self._spare:
            spare = self._spare.pop()
            if len(spare) == size:
                return spare
        return bytearray(size)

    def _send_part(self) -> None:
        try:
            if self._upload_id is None:
                self._upload_id = self._call("create_multipart_upload", **self._extra)["UploadId"]
                self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="s3-part")
            size = part_size(self._submitted + 1, self._base, self._hint)
            # Bound memory: with the limit reached, wait for a part before adding one.
            self._harvest(until=parts_in_flight(size, self._concurrency) - 1)
        except Exception as exc:
            raise self._describe(exc, f"cannot upload {self._key}") from exc
        self._submitted += 1
        assert self._pool is not None
        part, self._part, self._buffered = self._part, bytearray(), 0
        # The buffer itself is the body (botocore signs and sends it in one call each,
        # where a file would be read 8 KiB at a time); it is reused once the part is in.
        self._in_flight[self._pool.submit(self._upload_part, self._submitted, part)] = part

    def _harvest(self, until: int) -> None:
        """Collect finished parts, waiting while more than ``until`` are in flight.

        A failed part raises here, at the next part or at the end, whichever comes
        first, so a doomed upload is aborted without reading the rest of the dump.
        """
        while True:
            done = [future for future in self._in_flight if future.done()]
            for future in done:
                part = self._in_flight.pop(future)
                self._parts.append(future.result())
                self._spare.append(part)
            if len(self._in_flight) <= until:
                return
            wait(self._in_flight, return_when=FIRST_COMPLETED)

    def _upload_part(self, number: int, body: bytearray) -> dict[str, Any]:
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
        (AWS always; MinIO for an object uploaded in parts), hence off by default;
        if it fails the object is removed, so a failed write leaves nothing.
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
