"""The compose service ``minio-init``, run as compose would against a real MinIO: the app
gets its own user, which reaches its bucket and nothing else.

Needs MinIO's client ``mc`` (the image's tool) besides the ``minio`` peer; without it the
test is skipped with the reason (failed under BACKUP_API_REQUIRE_PEERS=1).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from shared.config import load_settings
from shared.storage.s3 import S3Storage
from tests.deploy.compose import command_of, environment_of, load_compose
from tests.minio import MINIO_PASSWORD, MINIO_USER, MinioServer
from tests.peers import REQUIRE_ENV, bin_dir
from tests.services import REPO

MiB = 1024 * 1024


def _mc() -> str:
    """Return MinIO's client (not Midnight Commander, also called mc); skip without it."""
    for candidate in (str(bin_dir() / "mc"), shutil.which("mc")):
        if candidate and os.access(candidate, os.X_OK):
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True,
                                     timeout=30)
            if version.stdout.startswith("mc version"):
                return candidate
    reason = ("mc (MinIO's client) not found: put it on PATH or in $BACKUP_API_PEERS_BIN "
              "(`go install github.com/minio/mc@latest`)")
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


@dataclasses.dataclass
class Init:
    """The minio-init service of docker-compose.yml, pointed at the test's MinIO."""

    argv: list[str]
    env: dict[str, str]
    mc: str

    def run(self, **overrides: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv, env={**self.env, **overrides}, capture_output=True,
                              text=True, timeout=180)

    def client(self, user: str | None = None, secret: str | None = None) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.env["MINIO_URL"], region_name="us-east-1",
            aws_access_key_id=user or self.env["S3_ACCESS_KEY"],
            aws_secret_access_key=secret or self.env["S3_SECRET_KEY"],
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))


@pytest.fixture
def init(minio: MinioServer, tmp_path: Path) -> Iterator[Init]:
    mc = _mc()
    compose = load_compose()
    service = compose["services"]["minio-init"]
    # The entrypoint runs a script mounted from the repository: run that file.
    mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
    argv = list(service["entrypoint"]) + command_of(service)
    argv = [str(REPO / mounts[a]) if a in mounts else a for a in argv]
    env = environment_of(service)
    # Our MinIO and its root; a bucket and an app user of this test's own.
    env |= {"MINIO_URL": minio.endpoint, "MINIO_ROOT_USER": MINIO_USER,
            "MINIO_ROOT_PASSWORD": MINIO_PASSWORD,
            "S3_BUCKET": f"init-{uuid.uuid4().hex[:12]}",
            "S3_ACCESS_KEY": f"app-{uuid.uuid4().hex[:12]}"}
    home = tmp_path / "home"
    home.mkdir()
    env |= {"PATH": f"{Path(mc).parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(home)}
    yield Init(argv, env, mc)


def _denied(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def test_the_app_user_reaches_its_bucket_and_nothing_else(init: Init, minio: MinioServer,
                                                          tmp_path: Path) -> None:
    result = init.run()
    assert result.returncode == 0, result.stdout + result.stderr
    bucket = init.env["S3_BUCKET"]

    # The storage code of the workers, with the compose config's S3 settings and the
    # app's keys: check, multipart write, read, list, and delete (which also aborts an
    # upload a killed worker left open on the key).
    worker_env = load_compose()["services"]["worker"]["environment"]
    worker_env |= {"S3_ACCESS_KEY": init.env["S3_ACCESS_KEY"],
                   "S3_SECRET_KEY": init.env["S3_SECRET_KEY"]}
    settings = load_settings(str(REPO / "deploy" / "config.compose.yaml"), env=worker_env)
    assert settings.storage.s3 is not None
    s3 = dataclasses.replace(settings.storage.s3, endpoint_url=minio.endpoint, bucket=bucket)
    storage = S3Storage(s3, part_size=5 * MiB)
    storage.check()
    data = os.urandom(6 * MiB)  # two parts
    with storage.writer("db/2026/backup.dump.gz") as writer:
        writer.write(data)
        writer.set_metadata({"sha256": "x"})
    with storage.open("db/2026/backup.dump.gz") as reader:
        assert reader.read() == data
    assert list(storage.list("db/")) == ["db/2026/backup.dump.gz"]
    app = init.client()
    app.create_multipart_upload(Bucket=bucket, Key="db/2026/backup.dump.gz")
    storage.delete("db/2026/backup.dump.gz")
    assert minio.keys(bucket) == [] and minio.pending_uploads(bucket) == []

    # What a stolen worker environment must not do with these keys.
    other = minio.make_bucket()
    minio.client().put_object(Bucket=other, Key="secret.dump", Body=b"another tenant")
    assert _denied(lambda: app.get_object(Bucket=other, Key="secret.dump")) == "AccessDenied"
    assert _denied(lambda: app.list_objects_v2(Bucket=other)) == "AccessDenied"
    assert _denied(lambda: app.put_object(Bucket=other, Key="x", Body=b"x")) == "AccessDenied"
    assert _denied(lambda: app.create_bucket(Bucket=f"new-{uuid.uuid4().hex[:8]}")) \
        == "AccessDenied"
    assert _denied(lambda: app.delete_bucket(Bucket=bucket)) == "AccessDenied"
    public = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
              f'"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::{bucket}/*"]}}]}}')
    assert _denied(lambda: app.put_bucket_policy(Bucket=bucket, Policy=public)) \
        == "AccessDenied"
    # Nor administer MinIO: make itself a user, or read the root's.
    env = {**init.env, "HOME": str(tmp_path)}
    subprocess.run([init.mc, "alias", "set", "app", minio.endpoint, init.env["S3_ACCESS_KEY"],
                    init.env["S3_SECRET_KEY"]], env=env, check=True, capture_output=True)
    for admin in (["admin", "user", "add", "app", "intruder", "intruder-secret-1"],
                  ["admin", "user", "info", "app", MINIO_USER]):
        attempt = subprocess.run([init.mc, *admin], env=env, capture_output=True, text=True)
        assert attempt.returncode != 0, attempt.stdout


def test_minio_init_runs_again_on_every_up(init: Init) -> None:
    for _ in range(2):
        result = init.run()
        assert result.returncode == 0, result.stdout + result.stderr
    bucket = init.env["S3_BUCKET"]
    init.client().put_object(Bucket=bucket, Key="k", Body=b"v")
    # A new secret in .env takes effect at the next up; the old one stops working.
    new_secret = uuid.uuid4().hex
    assert init.run(S3_SECRET_KEY=new_secret).returncode == 0
    assert init.client(secret=new_secret).get_object(Bucket=bucket, Key="k")["Body"].read() \
        == b"v"
    assert _denied(lambda: init.client().list_objects_v2(Bucket=bucket)) \
        == "SignatureDoesNotMatch"


def test_minio_init_refuses_to_hand_the_root_user_to_the_app(init: Init) -> None:
    result = init.run(S3_ACCESS_KEY=MINIO_USER)
    assert result.returncode != 0
    assert "S3_ACCESS_KEY must differ from MINIO_ROOT_USER" in result.stderr
