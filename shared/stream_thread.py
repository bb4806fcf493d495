"""A pull-style stream call (``call(reader, writer)``) run in a thread and fed push-style.

Libraries such as pyrage stream by pulling from a file-like reader and pushing to a
writer in one blocking call; our pipelines instead hand over one chunk at a time and
want the output as it comes. ``StreamThread`` sits between the two: ``push`` queues a
chunk for the call's reader (at most ``DEPTH`` wait, so memory stays at a few chunks)
and returns what the call wrote meanwhile.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# Chunks waiting for the call: with 1 MiB chunks, a few MiB in flight.
DEPTH = 4


_END = b""  # the inbox's end of input (never a real chunk: empty chunks are not sent)


class _Aborted(Exception):
    pass


class StreamThread:
    """Run ``call(reader, writer)`` in a thread; feed its reader, collect its writer.

    ``push`` hands a chunk over (waiting while ``DEPTH`` chunks are queued) and returns
    what the call wrote meanwhile; ``close`` ends the input, waits, returns the rest
    and re-raises the call's error; ``abort`` makes the call's next read fail.
    """

    def __init__(self, call: Callable[[_Reader, _Writer], object], name: str) -> None:
        self._inbox: queue.Queue[bytes | None] = queue.Queue(maxsize=DEPTH)
        self._writer = _Writer()
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, args=(call,), name=name, daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[_Reader, _Writer], object]) -> None:
        try:
            call(_Reader(self._inbox), self._writer)
        except BaseException as exc:  # noqa: BLE001 - handed to the feeding thread
            self._error = exc
        finally:
            # Done first, then empty the inbox: a feeder that saw "not done" and is
            # waiting on a full inbox is released, and the next one sees "done".
            self._done.set()
            while True:
                try:
                    self._inbox.get_nowait()
                except queue.Empty:
                    break

    def push(self, data: bytes) -> bytes:
        if data and not self._done.is_set():
            self._inbox.put(data)
        return self._writer.take()

    def close(self) -> bytes:
        self._finish(_END)
        if self._error is not None:
            raise self._error
        return self._writer.take()

    def abort(self) -> None:
        self._finish(None)

    def _finish(self, last: bytes | None) -> None:
        if not self._closed:
            self._closed = True
            if not self._done.is_set():
                self._inbox.put(last)
        self._thread.join()


class _Reader(io.BufferedIOBase):
    """The call's input: chunks from the inbox, handed out ``size`` bytes at a time."""

    def __init__(self, inbox: queue.Queue[bytes | None]) -> None:
        super().__init__()
        self._inbox = inbox
        self._rest = memoryview(b"")
        self._ended = False

    def read(self, size: int | None = -1, /) -> bytes:
        while not self._rest and not self._ended:
            chunk = self._inbox.get()
            if chunk is None:
                raise _Aborted("the stream was abandoned")
            self._ended = chunk == _END
            self._rest = memoryview(chunk)
        if size is None or size < 0:
            size = len(self._rest)
        data, self._rest = bytes(self._rest[:size]), self._rest[size:]
        return data

    def readable(self) -> bool:
        return True


class _Writer(io.BufferedIOBase):
    """The call's output, collected until the feeding thread takes it."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._lock = threading.Lock()

    def write(self, data: ReadableBuffer, /) -> int:
        chunk = bytes(data)
        with self._lock:
            self._parts.append(chunk)
        return len(chunk)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        with self._lock:
            parts, self._parts = self._parts, []
        return b"".join(parts)


__all__ = ["DEPTH", "StreamThread"]
