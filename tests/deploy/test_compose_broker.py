"""The broker and its dashboard in docker-compose.yml, run from the compose file's own
commands and URLs: Redis refuses clients without the password, Flower without its
credentials, and every role's broker URL gets in."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests

from tests.deploy.compose import command_of, environment_of, generated_env, load_compose
from tests.services import free_port, wait_for


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return generated_env()


@pytest.fixture(scope="module")
def compose(env: dict[str, str]) -> dict[str, Any]:
    return load_compose(env)


def test_every_broker_url_carries_the_redis_password(compose: dict[str, Any],
                                                     env: dict[str, str]) -> None:
    redis_service = compose["services"]["redis"]
    argv = command_of(redis_service)
    assert argv[argv.index("--requirepass") + 1] == env["REDIS_PASSWORD"]
    assert environment_of(redis_service)["REDISCLI_AUTH"] == env["REDIS_PASSWORD"]
    brokers = {name: environment_of(s)["CELERY_BROKER_URL"]
               for name, s in compose["services"].items()
               if "CELERY_BROKER_URL" in environment_of(s)}
    assert {"api", "worker", "beat", "flower", "migrate"} <= set(brokers)
    for name, url in brokers.items():
        assert urlsplit(url).password == env["REDIS_PASSWORD"], name


@pytest.fixture
def compose_redis(compose: dict[str, Any], tmp_path: Path) -> Iterator[int]:
    """redis-server started with the compose service's own command, on a free port."""
    port = free_port()
    argv = [*command_of(compose["services"]["redis"]), "--port", str(port),
            "--bind", "127.0.0.1", "--dir", str(tmp_path), "--appendonly", "no"]
    assert argv[0] == "redis-server"
    with open(tmp_path / "redis.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: b"Ready to accept" in (tmp_path / "redis.log").read_bytes(), 20,
                 "redis")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_redis_refuses_a_client_without_the_password(compose: dict[str, Any],
                                                     compose_redis: int) -> None:
    # An attacker on the compose network, speaking RESP: no password, or a guessed one.
    with socket.create_connection(("127.0.0.1", compose_redis), timeout=5) as sock:
        for command, refusal in ((b"PING", b"-NOAUTH"), (b"LPUSH backups forged", b"-NOAUTH"),
                                 (b"AUTH change-me", b"-WRONGPASS"), (b"KEYS *", b"-NOAUTH")):
            sock.sendall(command + b"\r\n")
            assert sock.recv(256).startswith(refusal), command
    # Every role, Flower included, gets in with the URL compose gives it.
    for name, service in compose["services"].items():
        url = environment_of(service).get("CELERY_BROKER_URL")
        if url:
            local = url.replace("@redis:6379/", f"@127.0.0.1:{compose_redis}/")
            assert redis.Redis.from_url(local, socket_timeout=5).ping(), name


def test_redis_healthcheck_fails_without_the_right_password(compose: dict[str, Any],
                                                            compose_redis: int) -> None:
    service = compose["services"]["redis"]
    kind, command = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL" and command.startswith("redis-cli ")
    command = command.replace("redis-cli", f"redis-cli -p {compose_redis}", 1)

    def healthy(auth: str | None) -> bool:
        env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        if auth is not None:
            env["REDISCLI_AUTH"] = auth
        return subprocess.run(["sh", "-c", command], env=env, capture_output=True,
                              timeout=30).returncode == 0

    assert healthy(environment_of(service)["REDISCLI_AUTH"])
    assert not healthy(None) and not healthy("wrong")


@pytest.fixture
def compose_flower(compose: dict[str, Any], compose_redis: int,
                   tmp_path: Path) -> Iterator[str]:
    """Flower as the compose service runs it (``celery flower``, its environment)."""
    service = compose["services"]["flower"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWER_", "CELERY_"))}
    env |= environment_of(service)
    port = free_port()
    env |= {"CELERY_BROKER_URL": env["CELERY_BROKER_URL"].replace(
                "@redis:6379/", f"@127.0.0.1:{compose_redis}/"),
            "FLOWER_PORT": str(port), "FLOWER_ADDRESS": "127.0.0.1"}
    argv = [sys.executable, "-m", *service["entrypoint"], *command_of(service)]
    with open(tmp_path / "flower.log", "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/healthcheck"), 60, "flower")
        yield url
    finally:
        process.terminate()
        process.wait(20)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_flower_refuses_requests_without_its_credentials(compose: dict[str, Any],
                                                         env: dict[str, str],
                                                         compose_flower: str) -> None:
    for path in ("/", "/tasks", "/api/workers", "/api/tasks"):
        for auth in (None, ("admin", "change-me"), (env["FLOWER_USER"], "wrong")):
            response = requests.get(compose_flower + path, auth=auth, timeout=10)
            assert response.status_code == 401, (path, auth)
    good = (env["FLOWER_USER"], env["FLOWER_PASSWORD"])
    assert requests.get(compose_flower + "/", auth=good, timeout=10).status_code == 200
