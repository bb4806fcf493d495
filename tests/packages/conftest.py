"""A stack for the package tests, with its storage backend as a parameter.

``STORAGE_BACKENDS`` lists the backends the whole package suite runs against; each
gets its own stack (API + worker) whose config differs only in ``storage:``: local
files, and a bucket of a real MinIO server once the S3 fixtures (``tests.minio``)
are in the tree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.config import load_settings
from shared.storage import Storage, make_storage
from tests.conftest import Client, Stack, start_stack
from tests.services import PostgresCluster, Redis

try:
    from tests.minio import MINIO_PASSWORD, MINIO_USER, MinioServer
except ImportError:  # the S3 storage branch is not merged yet
    STORAGE_BACKENDS = ["local"]
else:
    # Marked, so that without MinIO the s3 stacks skip before they start (tests/peers.py).
    STORAGE_BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.requires_peer("minio"))]
MAX_PACKAGES = 3
RETENTION_DAYS = 30

CONFIG = """
global:
  compression: gzip
  max_parallel_jobs: 2
{storage}
package-conf:
  schedule: "0 5 * * *"
  compression: zip
  retention_days: {retention_days}
  max_packages: {max_packages}
"""


def _storage_block(backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "local":
        return "storage:\n  type: local"
    minio: MinioServer = request.getfixturevalue("minio")
    return (f"storage:\n  type: s3\n  s3:\n    endpoint_url: {minio.endpoint}\n"
            f"    bucket: {minio.make_bucket()}\n    access_key: {MINIO_USER}\n"
            f"    secret_key: {MINIO_PASSWORD}")


@dataclass
class PackageStack:
    stack: Stack
    storage: Storage  # the same backend, opened by the test to tamper behind our back

    @property
    def client(self) -> Client:
        return self.stack.client

    def wait_package(self, package_id: str, timeout: float = 120) -> dict[str, Any]:
        """Poll until the package leaves pending/running; return its final state."""
        return self.client.wait_done(f"/packages/{package_id}", timeout)

    def create_package(self, **body: Any) -> dict[str, Any]:
        response = self.client.post("/packages/create", json=body)
        assert response.status_code == 202, response.text
        return self.wait_package(response.json()["id"])

    def backup(self, database_id: str) -> dict[str, Any]:
        response = self.client.post("/backups", json={"database_id": database_id})
        assert response.status_code == 202, response.text
        backup = self.client.wait_backup(response.json()["id"])
        assert backup["status"] == "completed", backup["error"]
        return backup


def start_package_stack(request: pytest.FixtureRequest, workdir: Path, pg: PostgresCluster,
                        redis: Redis, **worker_env: str) -> PackageStack:
    """Start API + one worker on ``request.param``'s storage backend, named by module."""
    backend: str = request.param
    config = CONFIG.format(storage=_storage_block(backend, request),
                           retention_days=RETENTION_DAYS, max_packages=MAX_PACKAGES)
    root = workdir / f"packages-{backend}-{request.module.__name__.rsplit('.', 1)[-1]}"
    stack = start_stack(root, pg, redis, config=config, workers=0)
    stack.start_worker("worker1", **worker_env)
    settings = load_settings(stack.env["BACKUP_API_CONFIG"], env={**os.environ, **stack.env})
    return PackageStack(stack=stack, storage=make_storage(settings))


def stop_package_stack(packages: PackageStack) -> None:
    for process in [packages.stack.api, *packages.stack.workers]:
        process.stop()


@pytest.fixture(scope="module", params=STORAGE_BACKENDS)
def packages(request: pytest.FixtureRequest, workdir: Path, pg: PostgresCluster,
             redis: Redis) -> Iterator[PackageStack]:
    running = start_package_stack(request, workdir, pg, redis)
    yield running
    stop_package_stack(running)
