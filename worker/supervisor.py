"""``backup-api worker`` runs its Celery worker as a child process and keeps it running.

Why: a Celery worker can end on its own while its host and broker are fine, and with
exit code 0, so a process manager that restarts only on failure leaves nothing
consuming the queues (Celery 5.7.0 did so when Redis went away while a task was
unacknowledged: ``Unrecoverable error: AttributeError(... 'hostname')``; see
shared/broker.py for the configuration that avoids that one). So:

- any exit we did not ask for, code 0 included, restarts the worker after a backoff
  (1 s, doubling up to a minute); after ``max_failures`` exits within ``window``
  seconds the supervisor gives up and exits 1, for the process manager to see;
- SIGTERM or SIGINT asks the worker for a warm shutdown (Celery stops taking tasks and
  finishes those running); after ``grace_period`` seconds it gets SIGQUIT (cold
  shutdown: running tasks are stopped, and the beat's reaper retries their backups as
  a new attempt), and SIGKILL ``kill_after`` seconds later. A second signal goes
  straight to the cold shutdown.

The worker runs in a process group of its own, so a signal sent to ours (Ctrl-C in a
terminal, ``kill -- -PGID``) reaches only the supervisor, which passes one SIGTERM to
the Celery main process: the pool processes running the jobs must not get it, they
would die mid-backup. (Under systemd use ``KillMode=mixed``, as for any Celery worker.)
On Linux the worker is killed if the supervisor is (``PR_SET_PDEATHSIG``): the two
stand or fall together, and a worker is never left running unsupervised.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TypeVar

log = logging.getLogger("backup_api.supervisor")

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Policy:
    """When to restart and when to give up; how long a stop may take."""

    grace_period: float = 300.0
    max_failures: int = 5
    window: float = 600.0
    first_backoff: float = 1.0
    max_backoff: float = 60.0
    kill_after: float = 30.0


class _Supervisor:
    def __init__(self, command: list[str], policy: Policy) -> None:
        self.command = command
        self.policy = policy
        self.child: subprocess.Popen[bytes] | None = None
        self.stop_requested: float | None = None  # monotonic time of the first signal
        self.cold_at: float | None = None  # when SIGQUIT was sent

    def on_signal(self, signum: int, _: FrameType | None) -> None:
        if self.stop_requested is None:
            self.stop_requested = time.monotonic()
            log.info("%s received: stopping the worker (warm shutdown, grace period %.0fs)",
                     signal.Signals(signum).name, self.policy.grace_period)
            self._send(signal.SIGTERM)
        elif self.cold_at is None:
            log.warning("%s received again: cold shutdown, running tasks are stopped",
                        signal.Signals(signum).name)
            self._cold()

    def run(self) -> int:
        failures: deque[float] = deque()
        while self.stop_requested is None:
            self.child = subprocess.Popen(self.command, process_group=0,
                                          preexec_fn=_die_with_parent(os.getpid()))
            if self.stop_requested is not None:  # a signal came while it was starting
                self._send(signal.SIGTERM)
            log.info("Celery worker started (pid %d)", self.child.pid)
            code = self._wait(self.child)
            if self.stop_requested is not None:
                log.info("Celery worker stopped (%s)", _describe(code))
                return code if code >= 0 else 128 - code
            now = time.monotonic()
            failures.append(now)
            while failures and failures[0] < now - self.policy.window:
                failures.popleft()
            if len(failures) >= self.policy.max_failures:
                log.error("Celery worker exited unexpectedly %d times in %.0fs (last: %s); "
                          "giving up", len(failures), self.policy.window, _describe(code))
                return 1
            delay = min(self.policy.max_backoff,
                        self.policy.first_backoff * 2 ** (len(failures) - 1))
            log.warning("Celery worker exited unexpectedly (%s); restarting it in %.0fs "
                        "(%d unexpected exits in %.0fs; giving up at %d)", _describe(code),
                        delay, len(failures), self.policy.window, self.policy.max_failures)
            self._sleep(delay)
        return 0

    def _wait(self, child: subprocess.Popen[bytes]) -> int:
        """Wait for ``child`` to exit, escalating a stop that outlasts its grace period."""
        while True:
            try:
                return child.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if self.stop_requested is None:
                continue
            if self.cold_at is None and now >= self.stop_requested + self.policy.grace_period:
                log.warning("grace period of %.0fs over: cold shutdown, running tasks are "
                            "stopped (their backups are retried as a new attempt)",
                            self.policy.grace_period)
                self._cold()
            elif self.cold_at is not None and now >= self.cold_at + self.policy.kill_after:
                log.error("Celery worker still running %.0fs after SIGQUIT: killing it",
                          self.policy.kill_after)
                child.kill()

    def _cold(self) -> None:
        self.cold_at = time.monotonic()
        self._send(signal.SIGQUIT)

    def _send(self, sig: int) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(sig)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.stop_requested is None and time.monotonic() < deadline:
            time.sleep(min(0.2, deadline - time.monotonic()))


def supervise(command: list[str], policy: Policy) -> int:
    """Run ``command`` (a Celery worker) until asked to stop; return the exit code."""
    supervisor = _Supervisor(command, policy)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.on_signal)
    return supervisor.run()


def wait_for(action: Callable[[], T], what: str, transient: tuple[type[BaseException], ...],
             timeout: float, first_backoff: float = 1.0, max_backoff: float = 15.0) -> T:
    """Return ``action()``, retried with backoff while it raises ``transient`` errors.

    For a service started before what it needs (a metadata DB still booting): each
    failure is one log line naming ``what`` it waits for; after ``timeout`` seconds the
    last error is raised.
    """
    deadline = time.monotonic() + timeout
    delay = first_backoff
    while True:
        try:
            return action()
        except transient as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("waiting for %s: %s; retrying in %.0fs", what,
                        str(exc).strip().splitlines()[0] if str(exc).strip()
                        else type(exc).__name__, delay)
        time.sleep(delay)
        delay = min(max_backoff, delay * 2)


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """Return a pre-exec hook asking Linux to kill the child when ``parent`` dies."""
    if not sys.platform.startswith("linux"):
        return None

    def hook() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # it died before the hook ran
            os.kill(os.getpid(), signal.SIGKILL)

    return hook
