"""The worker image's HEALTHCHECK command, run as Docker would, against a real worker."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from tests.conftest import Stack
from tests.deploy.compose import Dockerfile
from tests.services import Process, wait_for


def _healthcheck_argv() -> list[str]:
    instruction = Dockerfile.read("Dockerfile.worker").last("HEALTHCHECK")
    argv = yaml.safe_load(instruction.split(" CMD ", 1)[1])
    assert isinstance(argv, list)
    return [str(a) for a in argv]


@pytest.fixture
def default_named_worker(stack: Stack) -> Iterator[Process]:
    # In a container the worker runs without --hostname: its node is celery@<hostname>.
    worker = Process("celery-default", ["worker", "--concurrency=1"], stack.env,
                     stack.root / "celery-default.log").start()
    yield worker
    worker.stop()


def _check(stack: Stack, hostname: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CELERY_BROKER_URL": stack.env["CELERY_BROKER_URL"],
           "HOSTNAME": hostname}
    return subprocess.run(_healthcheck_argv(), env=env, capture_output=True, text=True,
                          timeout=60)


def test_worker_healthcheck_pings_its_own_node(stack: Stack,
                                               default_named_worker: Process) -> None:
    wait_for(lambda: _check(stack, socket.gethostname()).returncode == 0, 60,
             "the worker answering the image's HEALTHCHECK")
    # Another container's hostname: this node does not answer, so it is unhealthy.
    assert _check(stack, "no-such-container").returncode != 0
