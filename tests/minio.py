"""A real MinIO server for the tests, built from the Go module proxy by scripts/peers.sh.

Loaded as a pytest plugin from tests/conftest.py: the ``minio`` fixture starts one
server per session on a free port; ``s3_bucket`` gives each test its own bucket.
Without the binary every test using the fixture is skipped (``tests.peers``).
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from shared.config import S3Settings
from tests.peers import require
from tests.services import free_port, wait_http

MINIO_USER = "backup-test-admin"
MINIO_PASSWORD = "minio-Test-Secret-8812"
# A static KMS key lets MinIO accept SSE-S3 (AES256) without a KMS server.
MINIO_KMS_KEY = "backup-test-key:" + base64.b64encode(b"k" * 32).decode()


def find_minio() -> str:
    """Return the MinIO binary ($BACKUP_API_PEERS_BIN, then PATH); skip the test without it."""
    return require("minio")


@dataclass
class MinioServer:
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MinioServer:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MINIO_ROOT_USER": MINIO_USER,
               "MINIO_ROOT_PASSWORD": MINIO_PASSWORD, "MINIO_BROWSER": "off",
               "MINIO_KMS_SECRET_KEY": MINIO_KMS_KEY, "MINIO_UPDATE": "off"}
        self.process = subprocess.Popen(
            [find_minio(), "server", str(self.root / "data"),
             "--address", f"127.0.0.1:{self.port}",
             "--console-address", f"127.0.0.1:{free_port()}", "--quiet"],
            env=env, stdout=open(self.root / "minio.log", "ab"),
            stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"{self.endpoint}/minio/health/live", timeout=60)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def client(self) -> Any:
        """A plain boto3 client with the root credentials, to inspect what we stored."""
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=MINIO_USER, aws_secret_access_key=MINIO_PASSWORD,
            config=Config(s3={"addressing_style": "path"},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def make_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings(self, bucket: str, **overrides: Any) -> S3Settings:
        values: dict[str, Any] = {"bucket": bucket, "endpoint_url": self.endpoint,
                                  "access_key": MINIO_USER, "secret_key": MINIO_PASSWORD}
        return S3Settings(**{**values, **overrides})

    def keys(self, bucket: str) -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listing.get("Contents", ()))

    def pending_uploads(self, bucket: str) -> list[str]:
        listing = self.client().list_multipart_uploads(Bucket=bucket)
        return [upload["Key"] for upload in listing.get("Uploads", ())]

    def bucket_exists(self, bucket: str) -> bool:
        names = [b["Name"] for b in self.client().list_buckets().get("Buckets", ())]
        return bucket in names


@pytest.fixture(scope="session")
def minio() -> Iterator[MinioServer]:
    find_minio()  # first: without the binary every S3 test skips, and nothing is made
    root = Path(tempfile.mkdtemp(prefix="backup-api-minio-"))
    server = MinioServer(root).start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def s3_bucket(minio: MinioServer) -> str:
    """A fresh, empty bucket for one test."""
    return minio.make_bucket()
