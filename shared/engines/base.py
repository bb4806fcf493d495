"""The engine contract: a pure command builder plus one streaming runner for all engines.

An engine turns a :class:`Target` into a :class:`DumpCommand` without touching the
system (unit-testable); :func:`run_dump` starts it and yields its stdout, and
:func:`run_restore` starts a reader (restore or check) and yields a :class:`Feed`.

Error meaning: every failure surfaces as ``DumpError`` whose message includes the
tool's stderr tail with the password redacted; a non-zero exit is a ``ToolFailed``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import IO, Any

from shared.engines.unreachable import is_unreachable, unreachable_message
from shared.errors import DumpError, redact
from shared.stopping import Cancellation

log = logging.getLogger(__name__)

STDERR_TAIL = 1500
# How much of a dump's beginning the pipeline keeps for DumpEngine.check_output.
HEAD_BYTES = 64 * 1024
# What a tool inherits from the worker's environment: basics, locale, trust anchors and
# Kerberos paths. Never the rest: the worker's environment holds the metadata DB URL, the
# broker URL, S3 keys and API secrets, and a tool (or a fake one) has no use for them.
TOOL_ENVIRONMENT = (
    "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LANGUAGE", "LC_ALL",
    "LC_CTYPE", "LC_MESSAGES", "SSL_CERT_FILE", "SSL_CERT_DIR", "KRB5_CONFIG", "KRB5CCNAME",
)


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return the minimal environment of a child process, plus ``extra``."""
    env = {key: os.environ[key] for key in TOOL_ENVIRONMENT if key in os.environ}
    env.setdefault("PATH", os.defpath)
    return {**env, **(extra or {})}


class ToolFailed(DumpError):
    """The tool exited non-zero on its own; ``reason`` is its redacted stderr tail."""

    def __init__(self, tool: str, returncode: int, reason: str) -> None:
        super().__init__(f"{tool} exited with code {returncode}: {reason}")
        self.tool = tool
        self.returncode = returncode
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """How to reach one database (built from a ``databases`` row).

    ``hostaddr``, when set, is the address ``host`` resolved to when it was checked
    against ``global.allowed_hosts``: the tools connect there and nowhere else, whatever
    the DNS answers next (PostgreSQL only; ``host`` still names the server for TLS).
    """

    engine: str
    host: str
    port: int
    database_name: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    hostaddr: str | None = None

    @property
    def endpoint(self) -> str:
        """Return ``host:port``, as failures to connect name the server."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class DumpCommand:
    """A command line plus what it needs beside it.

    ``secret_files`` are written into a private 0700 directory with mode 0600
    before the process starts; ``{secrets}`` in ``argv`` or ``env`` values is
    replaced by that directory. Secrets never go on the command line. ``endpoint``
    (``host:port``) names the server a failure to connect is reported against.
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    secret_files: dict[str, str] = field(default_factory=dict, repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    endpoint: str = ""


class DumpEngine(ABC):
    name: str
    tool: str

    @abstractmethod
    def build_dump(self, target: Target) -> DumpCommand:
        """Return the command that writes one uncompressed dump to stdout."""

    def resolve(self, target: Target) -> DumpEngine:
        """Return the engine to dump ``target`` with (e.g. the client matching its server).

        May ask the server; raise ``DumpError`` when no usable client is installed.
        """
        return self

    def check_output(self, target: Target, head: bytes) -> None:
        """Raise ``DumpError`` if a non-empty dump that exited 0 is still unusable.

        ``head`` holds the first bytes of the uncompressed dump (up to ``HEAD_BYTES``).
        """
        return None

    def build_restore(self, target: Target, source_database_name: str) -> DumpCommand:
        """Return the command that reads one uncompressed dump on stdin into ``target``."""
        raise DumpError(f"restoring {self.name} backups is not supported")

    def build_check(self) -> DumpCommand | None:
        """Return a command that reads a whole dump on stdin and fails if it is unreadable.

        ``None`` means the engine has no offline checker (only bytes are checked).
        """
        raise DumpError(f"checking {self.name} archives is not supported")

    def is_empty(self, target: Target) -> bool:
        """Tell whether ``target`` holds no user data (restoring over it loses nothing)."""
        return False

    def tool_versions(self) -> dict[str, str]:
        """Return ``{tool: version}`` of the client that dumps; empty if unknown."""
        return {}

    def locate(self, options: dict[str, Any] | None = None) -> str:
        """Describe the installed client (path, version); raise ``DumpError`` if missing."""
        path = shutil.which(self.tool)
        if path is None:
            raise DumpError(f"{self.tool} not found: install it or put it on PATH")
        return path


def version_line(argv: list[str], prefix: str = "") -> str:
    """Return the first line ``argv`` (a ``--version`` call) prints, minus ``prefix``."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                             env=tool_env()).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0].removeprefix(prefix).strip() if out.strip() else "unknown"


def _materialize(command: DumpCommand, directory: str) -> tuple[list[str], dict[str, str]]:
    for name, content in command.secret_files.items():
        path = os.path.join(directory, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
    argv = [arg.replace("{secrets}", directory) for arg in command.argv]
    env = {k: v.replace("{secrets}", directory) for k, v in command.env.items()}
    return argv, env


@contextmanager
def run_dump(command: DumpCommand,
             cancellation: Cancellation | None = None) -> Iterator[IO[bytes]]:
    """Start ``command`` and yield its stdout; on exit check how it ended.

    If the body raises (storage failed, time limit), the process is killed. If the
    process exits non-zero, ``DumpError`` carries its redacted stderr tail; if it was
    stopped by ``cancellation``, ``Cancelled``.
    """
    with _spawn(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                cancellation=cancellation) as process:
        assert process.stdout is not None
        try:
            yield process.stdout
        finally:
            process.stdout.close()


class Feed:
    """The stdin of a running reader. Writing never fails because the tool stopped reading.

    A tool may exit before the end of the stream (it found damage, or needs no more);
    the caller goes on reading its source (to finish its checksums) and learns how the
    tool ended from its exit code when the ``run_restore`` block ends.
    """

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self.closed_early = False

    def write(self, data: bytes) -> None:
        if self.closed_early or not data:
            return
        try:
            self._pipe.write(data)
        except BrokenPipeError:
            self.closed_early = True

    def close(self) -> None:
        try:
            self._pipe.close()
        except BrokenPipeError:
            self.closed_early = True


@contextmanager
def run_restore(command: DumpCommand,
                cancellation: Cancellation | None = None) -> Iterator[Feed]:
    """Start ``command`` and yield a :class:`Feed` of its stdin; check how it ended.

    When the body ends, stdin is closed (the tool sees the end of the stream) and a
    non-zero exit raises ``ToolFailed``. When the body raises, the tool is killed
    *before* its stdin closes: a tool must never take an abandoned stream for a whole
    one (``pg_restore --single-transaction`` would commit it). A tool stopped by
    ``cancellation`` ends the block with ``Cancelled``.
    """
    with _spawn(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                cancellation=cancellation) as process:
        assert process.stdin is not None
        feed = Feed(process.stdin)
        try:
            yield feed
        except BaseException:
            process.kill()
            feed.close()
            raise
        feed.close()


@contextmanager
def _spawn(command: DumpCommand, stdin: Any, stdout: Any,
           cancellation: Cancellation | None = None) -> Iterator[subprocess.Popen[bytes]]:
    tool = os.path.basename(command.argv[0])
    with tempfile.TemporaryDirectory(prefix="backup-api-") as secrets_dir, \
            tempfile.TemporaryFile() as stderr:
        os.chmod(secrets_dir, 0o700)
        argv, extra_env = _materialize(command, secrets_dir)
        if shutil.which(argv[0]) is None:
            raise DumpError(f"{tool} not found: install it or put it on PATH")
        try:
            # Its own process group: a cancel stops the tool and whatever it started.
            process = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                       env=tool_env(extra_env), process_group=0)
        except OSError as exc:
            raise DumpError(f"cannot start {tool}: {exc.strerror}") from exc
        watched: AbstractContextManager[None] = (
            cancellation.running(process) if cancellation else nullcontext())
        with watched:
            try:
                yield process
            except BaseException:
                process.kill()
                process.wait()
                if cancellation is not None:
                    cancellation.check()  # the tool died of the cancel: say so
                raise
            returncode = process.wait()
        if cancellation is not None:
            cancellation.check()
        if returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode("utf-8", "replace")[-STDERR_TAIL:].strip()
            reason = redact(tail, list(command.secrets)) or "no error output"
            if command.endpoint and is_unreachable(reason):
                log.warning("%s could not connect to %s: %s", tool, command.endpoint, reason)
                reason = unreachable_message(command.endpoint)
            raise ToolFailed(tool, returncode, reason)
