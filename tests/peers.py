"""The peer binaries of the tests (MinIO, FerretDB, the MongoDB Database Tools), and the
one way a test asks for one.

``scripts/peers.sh`` builds what the Go module proxy serves into a bin directory
(``scripts/test.sh`` exports it as ``BACKUP_API_PEERS_BIN``) and writes there
``peers.status``: one line per peer, ``name<TAB>state<TAB>detail``, state being
``built``, ``cached`` or ``unavailable`` (detail: the version, or the registry's answer).

A fixture calls :func:`require`; a test that runs a binary itself or through the worker
carries ``@pytest.mark.requires_peer("mongodump")``. When the binary is missing the test
is skipped with a reason that names it, says why and how to provide it; with
``BACKUP_API_REQUIRE_PEERS=1`` it fails instead (machines that must run everything).
:class:`Ledger` keeps what ran and what was skipped for the summary at the end of the run.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DEFAULT_BIN = Path.home() / ".cache" / "backup-api" / "bin"
REQUIRE_ENV = "BACKUP_API_REQUIRE_PEERS"


@dataclass(frozen=True)
class Peer:
    """One peer as ``scripts/peers.sh`` names it, and what the suite uses it for."""

    name: str
    binaries: tuple[str, ...]
    fixtures: tuple[str, ...]  # fixtures that start it: a test using one needs the peer
    suites: str  # "S3 suites ran", "14 S3 tests skipped"
    provide: str  # how a user gets the binary without scripts/peers.sh


PEERS = (
    Peer("minio", ("minio",), ("minio",), "S3",
         "put minio on PATH or in $BACKUP_API_PEERS_BIN (`bash scripts/peers.sh minio`)"),
    Peer("mc", ("mc",), (), "MinIO client",
         "put MinIO's mc on PATH or in $BACKUP_API_PEERS_BIN (`bash scripts/peers.sh mc`)"),
    Peer("ferretdb", ("ferretdb",), ("ferret",), "FerretDB",
         "put ferretdb on PATH or in $BACKUP_API_PEERS_BIN (`bash scripts/peers.sh ferretdb`)"),
    Peer("mongotools", ("mongodump", "mongorestore"), (), "MongoDB dump/restore",
         "install the MongoDB Database Tools on PATH or in $BACKUP_API_PEERS_BIN"),
    # Not built by peers.sh: Debian's package, which scripts/test.sh installs.
    Peer("age", ("age",), (), "age command line",
         "install Debian's age package (`apt-get install age`; scripts/test.sh does)"),
)
BY_BINARY = {binary: peer for peer in PEERS for binary in peer.binaries}


def bin_dir() -> Path:
    """Return the directory scripts/peers.sh built into (the env, else its default)."""
    return Path(os.environ.get("BACKUP_API_PEERS_BIN") or DEFAULT_BIN)


def find(binary: str) -> str | None:
    """Return the path of ``binary``: the peers directory first, then ``PATH``."""
    candidate = bin_dir() / binary
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(binary)


@functools.cache
def status() -> dict[str, tuple[str, str]]:
    """Return ``{peer: (state, detail)}`` from peers.status (empty when it never ran)."""
    try:
        lines = (bin_dir() / "peers.status").read_text().splitlines()
    except OSError:
        return {}
    fields = [line.split("\t", 2) for line in lines if line.count("\t") >= 2]
    return {name: (state, detail) for name, state, detail in fields}


def why_missing(peer: Peer) -> str:
    """Say why scripts/peers.sh did not provide ``peer``."""
    state, detail = status().get(peer.name, ("", ""))
    if state == "unavailable":
        return f"scripts/peers.sh could not build it ({detail})"
    if state:
        return f"scripts/peers.sh reports it {state} but it is not in {bin_dir()}"
    return f"scripts/peers.sh has not tried {peer.name} in {bin_dir()}"


def missing_reason(binary: str) -> str:
    """Return the skip reason for a missing ``binary``: what, why, and how to provide it."""
    peer = BY_BINARY[binary]
    return f"{binary} not found: {why_missing(peer)}; {peer.provide}"


def require(binary: str) -> str:
    """Return the path of ``binary``; skip the test without it (fail under REQUIRE_ENV)."""
    path = find(binary)
    if path is not None:
        return path
    reason = missing_reason(binary)
    LEDGER.reasons[reason] = BY_BINARY[binary].name
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def path_with_peers() -> str:
    """Return ``PATH`` with the peers directory first (what scripts/test.sh sets up)."""
    return f"{bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}"


@dataclass
class Ledger:
    """What the run did with each peer: tests that used it, tests it held back."""

    reasons: dict[str, str] = field(default_factory=dict)  # reason -> peer name
    used: dict[str, set[str]] = field(default_factory=dict)  # peer -> node ids
    held_back: dict[str, set[str]] = field(default_factory=dict)  # skipped or failed
    called: set[str] = field(default_factory=set)  # node ids whose test body ran
    # Other outside things a suite needs and says here what became of (e.g. "docker":
    # "compose test SKIPPED: no Docker engine can run here (...)"): one line each.
    notes: dict[str, str] = field(default_factory=dict)

    def note_use(self, nodeid: str, fixturenames: Iterable[str], binaries: Iterable[str]) -> None:
        """Record the peers a test used, by the fixtures it set up and the binaries it marks."""
        names = set(fixturenames)
        marked = set(binaries)
        for peer in PEERS:
            if names.intersection(peer.fixtures) or marked.intersection(peer.binaries):
                self.used.setdefault(peer.name, set()).add(nodeid)

    def note_report(self, report: pytest.TestReport) -> None:
        """Record a test held back by a missing peer (its message holds our reason)."""
        if report.when == "call":
            self.called.add(report.nodeid)
        if not (report.skipped or report.failed):
            return
        text = report.longreprtext
        for reason, peer in self.reasons.items():
            if reason in text:
                self.held_back.setdefault(peer, set()).add(report.nodeid)

    def lines(self) -> list[str]:
        """Return one summary line per peer: its state, and what ran or was skipped."""
        return [*(f"peers: {'/'.join(peer.binaries)} {self._state(peer)} — {self._outcome(peer)}"
                  for peer in PEERS),
                *(f"peers: {topic} — {note}" for topic, note in sorted(self.notes.items()))]

    def _state(self, peer: Peer) -> str:
        paths = [find(binary) for binary in peer.binaries]
        state, detail = status().get(peer.name, ("", ""))
        if None in paths:
            why = detail if state == "unavailable" else why_missing(peer)
            if any(paths):  # one tool of several: say which is missing
                missing = [b for b, p in zip(peer.binaries, paths, strict=True) if p is None]
                why = f"{', '.join(missing)} not found; {why}"
            return f"UNAVAILABLE ({why})"
        if all(Path(p).parent == bin_dir() for p in paths if p) and state in ("built", "cached"):
            return f"{state} ({detail})"
        return f"found ({', '.join(p for p in paths if p)})"

    def _outcome(self, peer: Peer) -> str:
        held = len(self.held_back.get(peer.name, ()))
        ran = len((self.used.get(peer.name, set()) & self.called)
                  - self.held_back.get(peer.name, set()))
        parts = []
        if ran:
            parts.append(f"{peer.suites} suites ran ({ran} {_tests(ran)})")
        if held and os.environ.get(REQUIRE_ENV) == "1":
            parts.append(f"{held} {peer.suites} {_tests(held)} FAILED ({REQUIRE_ENV}=1)")
        elif held:
            parts.append(f"{held} {peer.suites} {_tests(held)} skipped; "
                         f"set {REQUIRE_ENV}=1 to fail instead")
        return "; ".join(parts) or f"no {peer.suites} tests selected"


def _tests(count: int) -> str:
    return "test" if count == 1 else "tests"


LEDGER = Ledger()
