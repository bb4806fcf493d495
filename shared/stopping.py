"""Stopping a running job on request: its tools are ended, its pipeline unwinds.

``POST …/cancel`` only writes ``cancel_requested_at`` on the job's row. The worker
running the job watches the row from a thread (``worker/cancel.py``) and calls
``Cancellation.request``: every tool the job started (``pg_dump``, ``mongodump``,
``pg_restore``…, each the leader of its own process group) is sent SIGTERM as a group,
then SIGKILL after ``KILL_AFTER`` seconds if it is still there. The pipeline calls
``check`` between chunks, and a tool stopped this way ends its ``run_dump`` /
``run_restore`` block with ``Cancelled`` rather than a tool failure, so the writer
around it discards the partial artifact (a temporary file, an open multipart upload)
as it does for any error.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from shared.errors import Cancelled

log = logging.getLogger(__name__)

# Seconds a tool gets to exit on SIGTERM before its group is killed.
KILL_AFTER = 2.0


class Cancellation:
    """One job's stop request, shared by the watcher thread and the pipeline."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._processes: list[subprocess.Popen[bytes]] = []
        self.reason = "cancelled on request"

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, reason: str) -> None:
        """Stop the job: end the tools it runs now; its next ``check`` raises ``Cancelled``."""
        with self._lock:
            if self._event.is_set():
                return
            self.reason = reason
            self._event.set()
            processes = list(self._processes)
        _stop_all(processes)

    def check(self) -> None:
        """Raise ``Cancelled`` if a stop was requested."""
        if self._event.is_set():
            raise Cancelled(self.reason)

    @contextmanager
    def running(self, process: subprocess.Popen[bytes]) -> Iterator[None]:
        """Count ``process`` (a process group leader) among the tools a request stops."""
        with self._lock:
            self._processes.append(process)
            late = self._event.is_set()
        if late:  # the request came while the tool was starting
            _stop_all([process])
        try:
            yield
        finally:
            with self._lock:
                self._processes.remove(process)


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each group, then SIGKILL the groups still running after ``KILL_AFTER``."""
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + KILL_AFTER
    for process in processes:
        # poll(), not wait(): the job's own thread may be waiting on the process already.
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.returncode is None:
            log.warning("pid %d did not exit on SIGTERM within %.0fs; killing its group",
                        process.pid, KILL_AFTER)
            _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # already gone (and reaped)


__all__ = ["KILL_AFTER", "Cancellation"]
