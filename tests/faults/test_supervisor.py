"""The restart policy of ``backup-api worker`` (worker/supervisor.py), with real child
processes standing in for the Celery worker so that exits and stops are quick to cause."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.services import REPO

pytestmark = pytest.mark.faults

SUPERVISE = """
import logging, sys
from worker.supervisor import Policy, supervise
logging.basicConfig(level=logging.INFO, format="%(message)s")
policy = Policy(grace_period={grace}, max_failures=3, window=60, first_backoff=0.1,
                kill_after=1)
sys.exit(supervise([sys.executable, "-c", {child!r}], policy))
"""


def _supervisor(child: str, grace: float = 2) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SUPERVISE.format(grace=grace, child=child)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_a_child_exiting_0_is_restarted_then_given_up_on() -> None:
    supervisor = _supervisor("print('worker up', flush=True)")
    output, _ = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 1
    assert output.count("worker up") == 3
    assert output.count("Celery worker exited unexpectedly (exit code 0); restarting") == 2
    assert "exited unexpectedly 3 times in 60s (last: exit code 0); giving up" in output


def test_sigterm_is_passed_on_and_a_warm_stop_ends_cleanly(tmp_path: Path) -> None:
    marker = tmp_path / "stopped"
    child = ("import signal, sys, time\n"
             "def stop(*_):\n"
             f"    time.sleep(0.5); open({str(marker)!r}, 'w').write('warm'); sys.exit(0)\n"
             "signal.signal(signal.SIGTERM, stop)\n"
             "print('worker up', flush=True)\n"
             "while True: time.sleep(1)\n")
    supervisor = _supervisor(child)
    assert supervisor.stdout is not None
    while "worker up" not in supervisor.stdout.readline():
        pass
    supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0
    assert marker.read_text() == "warm"
    assert "Celery worker stopped (exit code 0)" in output
    assert "restarting" not in output


def test_a_child_outlasting_the_grace_period_gets_sigquit_then_sigkill() -> None:
    child = ("import signal, time\n"
             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "signal.signal(signal.SIGQUIT, signal.SIG_IGN)\n"
             "print('worker up', flush=True)\n"
             "while True: time.sleep(1)\n")
    supervisor = _supervisor(child, grace=1)
    assert supervisor.stdout is not None
    while "worker up" not in supervisor.stdout.readline():
        pass
    started = time.monotonic()
    supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 128 + signal.SIGKILL
    assert "grace period of 1s over: cold shutdown" in output
    assert "still running 1s after SIGQUIT: killing it" in output
    assert time.monotonic() - started < 10
