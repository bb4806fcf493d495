"""Docker for the compose test: an engine (started when none answers, stopped after), our
images and the stand-ins built, and one compose project run from docker-compose.yml.

``scripts/docker-base.sh`` and ``scripts/docker-build.sh`` do the building; this module
runs them, reads what they print and drives ``docker compose`` as a person would. When
Docker cannot run here (no root, a dockerd that cannot start) or a stand-in's peer binary
is missing, the test is skipped and the reason goes to the peers summary at the end of
the run (tests/peers.py ``LEDGER.notes["docker"]``).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import peers
from tests.deploy.compose import generated_env, load_compose
from tests.services import REPO, free_port

OVERRIDE = REPO / "deploy" / "compose.standins.yaml"
OUR_DOCKERFILES = {"Dockerfile.api": "API_IMAGE", "Dockerfile.worker": "WORKER_IMAGE"}
CANNOT_RUN, PEER_MISSING = 3, 4  # exit statuses of scripts/docker-base.sh, docker-build.sh


def note(text: str) -> None:
    """Say in the peers summary what became of the compose test."""
    peers.LEDGER.notes["docker"] = text


def skip(reason: str) -> None:
    """Skip the compose test saying why; fail instead under BACKUP_API_REQUIRE_PEERS=1."""
    if os.environ.get(peers.REQUIRE_ENV) == "1":
        note(f"compose test FAILED: {reason} ({peers.REQUIRE_ENV}=1)")
        pytest.fail(f"{reason} ({peers.REQUIRE_ENV}=1)", pytrace=False)
    note(f"compose test SKIPPED: {reason}")
    pytest.skip(reason)


def _key_values(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _script(argv: list[str], what: str, timeout: float) -> dict[str, str]:
    """Run one of our docker scripts; skip when Docker cannot work here, fail otherwise."""
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    tail = " | ".join(result.stderr.strip().splitlines()[-3:])
    if result.returncode == CANNOT_RUN:
        skip(f"no Docker engine can run on this machine: {tail}")
    if result.returncode == PEER_MISSING:
        skip(f"a stand-in needs a peer binary that is missing: {tail}")
    if result.returncode != 0:
        raise AssertionError(f"{what} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return _key_values(result.stdout)


@dataclass
class Engine:
    """A Docker engine that answers, the compose command, and the images of the test."""

    compose: list[str]
    started_pid: int | None
    images: dict[str, str]  # API_IMAGE, WORKER_IMAGE, MONGO_TOOLS, MONGO_TOOLS_WHY
    build_seconds: float

    def docker(self, *args: str, timeout: float = 120,
               check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True,
                              timeout=timeout, check=check)

    def stop_if_started(self) -> None:
        """Stop the dockerd this test started (SIGTERM: it stops its containerd too)."""
        if not self.started_pid:
            return
        try:
            os.kill(self.started_pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and Path(f"/proc/{self.started_pid}").exists():
            time.sleep(0.5)


def start_engine() -> Engine:
    """Install and start what is missing, then build the stand-ins and our images."""
    if os.geteuid() != 0 and subprocess.run(["docker", "info"], capture_output=True,
                                            timeout=30).returncode != 0:
        skip("needs root to install docker.io and start dockerd, and no Docker engine answers")
    t0 = time.monotonic()
    base = _script(["bash", "scripts/docker-base.sh"], "scripts/docker-base.sh", 3600)
    engine = Engine(shlex.split(base["COMPOSE"]), int(base["DOCKERD_STARTED"] or 0) or None,
                    {}, 0.0)
    try:
        engine.images = _script(["bash", "scripts/docker-build.sh"], "scripts/docker-build.sh",
                                3600)
    except BaseException:
        engine.stop_if_started()
        raise
    engine.build_seconds = time.monotonic() - t0
    return engine


@dataclass
class Project:
    """One ``docker compose -p NAME`` run of docker-compose.yml plus the stand-ins."""

    engine: Engine
    name: str
    env_file: Path
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)
    up_seconds: float = 0.0  # from `up` to every service ready

    @property
    def argv(self) -> list[str]:
        return [*self.engine.compose, "-p", self.name, "--env-file", str(self.env_file),
                "-f", str(REPO / "docker-compose.yml"), "-f", str(OVERRIDE)]

    def compose(self, *args: str, timeout: float = 300, check: bool = True,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self.argv, *args], cwd=REPO, capture_output=True, text=True,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{result.stderr}")
        return result

    def psql(self, service: str, database: str, sql: str, user: str = "shop") -> str:
        """Run ``sql`` with psql inside ``service`` (an operator's `compose exec`)."""
        return self.compose("exec", "-T", service, "psql", "-X", "-A", "-t", "-v",
                            "ON_ERROR_STOP=1", "-U", user, "-d", database, "-c", sql,
                            timeout=60).stdout.strip()

    def containers(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "-a", "--format", "json").stdout.strip()
        if out.startswith("["):
            return list(json.loads(out))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def logs(self, tail: int = 40) -> str:
        return self.compose("logs", "--no-color", "--tail", str(tail), check=False,
                            timeout=60).stdout[-12000:]

    def wait(self, ready: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(2)
        raise AssertionError(f"{what}: not within {seconds:.0f}s\n{self.logs()}")

    def down(self) -> None:
        """Remove the containers, volumes and networks, whatever state they are in."""
        self.compose("down", "-v", "--remove-orphans", "--timeout", "10", check=False,
                     timeout=300)
        label = f"label=com.docker.compose.project={self.name}"
        for kind in ("network", "volume"):
            ids = self.engine.docker(kind, "ls", "-q", "--filter", label,
                                     check=False).stdout.split()
            if ids:
                self.engine.docker(kind, "rm", *ids, check=False)
        for image in self.our_service_images():
            self.engine.docker("rmi", image, check=False)

    def our_service_images(self) -> dict[str, str]:
        """Return {compose's image name for a service built from our Dockerfiles: our image}."""
        services = load_compose(self.env)["services"]
        return {f"{self.name}-{name}": self.engine.images[OUR_DOCKERFILES[s["build"]["dockerfile"]]]
                for name, s in services.items()
                if s.get("build", {}).get("dockerfile") in OUR_DOCKERFILES}


def new_project(engine: Engine, root: Path) -> Project:
    """A project with a fresh .env (deploy/new-env.sh) and free host ports on 127.0.0.1."""
    name = f"bapi-test-{secrets.token_hex(4)}"
    env = generated_env()
    ports = {"API_HOST_PORT": free_port(), "FLOWER_HOST_PORT": free_port(),
             "MINIO_HOST_PORT": free_port(), "MINIO_CONSOLE_HOST_PORT": free_port()}
    env.update({k: str(v) for k, v in ports.items()})
    env_file = root / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    env_file.chmod(0o600)
    project = Project(engine, name, env_file, env, ports)
    # Compose names the image of a service with a `build:` PROJECT-SERVICE: tag ours so,
    # and `up --no-build` runs them as they are, with docker-compose.yml unchanged.
    for alias, image in project.our_service_images().items():
        engine.docker("tag", image, alias)
    return project


ONE_SHOT = {"migrate", "minio-init", "sample-mongodb-seed"}


def settled(project: Project) -> Iterator[str]:
    """Yield what is not ready yet: one-shots not exited 0, healthchecks not healthy, and
    services without a healthcheck not running."""
    for c in project.containers():
        service, state, health = c["Service"], c["State"], c.get("Health", "")
        if service in ONE_SHOT:
            if state != "exited" or int(c.get("ExitCode", 1)) != 0:
                yield f"{service}: {state} (exit {c.get('ExitCode')})"
        elif health:
            if health != "healthy":
                yield f"{service}: {health}"
        elif state != "running":
            yield f"{service}: {state}"
