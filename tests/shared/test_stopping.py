"""A cancel stops a real endless tool: the stream ends with Cancelled, no process is left."""

from __future__ import annotations

import os
import threading
import time

import pytest

from shared.engines import DumpCommand, run_dump
from shared.errors import Cancelled
from shared.stopping import Cancellation


def _stream_until_cancelled(command: DumpCommand) -> int:
    """Run ``command`` as a dump, cancel it after 2 MB from another thread; return the
    bytes read."""
    cancellation = Cancellation()
    read = 0
    with pytest.raises(Cancelled, match="stop it now"):
        with run_dump(command, cancellation) as out:
            while chunk := out.read(64 * 1024):
                read += len(chunk)
                if read >= 2 * 1024 * 1024 and not cancellation.requested:
                    threading.Thread(target=cancellation.request, args=("stop it now",)).start()
    return read


def _parent(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


def _children() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if _parent(int(entry)) == os.getpid():
                    found.add(int(entry))
            except (OSError, ValueError):
                continue
    return found


def test_an_endless_tool_is_stopped_and_its_stream_says_cancelled() -> None:
    before = _children()
    read = _stream_until_cancelled(DumpCommand(argv=["yes", "runaway dump"]))
    assert read >= 2 * 1024 * 1024
    assert _children() == before  # stopped and reaped


def test_a_tool_ignoring_sigterm_is_killed_with_its_group() -> None:
    before = _children()
    # The shell ignores SIGTERM and so does its child: only SIGKILL of the group ends both.
    command = DumpCommand(argv=["sh", "-c", "trap '' TERM; yes ignoring | cat"])
    _stream_until_cancelled(command)
    time.sleep(0.2)  # the orphaned pipeline members were killed, not reaped by us
    assert _children() == before
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == "yes ignoring"]


def _cmdline(pid: str) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_a_cancel_requested_before_the_tool_starts_stops_it_at_once() -> None:
    cancellation = Cancellation()
    cancellation.request("too late to start")
    with pytest.raises(Cancelled, match="too late to start"):
        with run_dump(DumpCommand(argv=["yes"]), cancellation) as out:
            while out.read(64 * 1024):
                pass
