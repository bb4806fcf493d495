"""The S3 writer with several parts in flight: whole objects, and a refused part aborts
the upload at once, leaving neither an object nor an open multipart upload."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from shared.errors import StorageError
from shared.storage.s3 import S3Storage
from shared.storage.s3_upload import MIN_PART_SIZE, parts_in_flight
from tests.minio import MINIO_PASSWORD, MINIO_USER, MinioServer
from tests.peers import require

MiB = 1024 * 1024


def _payload(size: int) -> bytes:
    """Bytes that differ from part to part, so a part out of place changes the object."""
    return b"".join(hashlib.sha256(str(n).encode()).digest() * 32
                    for n in range(size // 1024 + 1))[:size]


def test_parts_sent_in_parallel_make_the_object_in_order(minio: MinioServer,
                                                         s3_bucket: str) -> None:
    storage = S3Storage(minio.settings(s3_bucket), part_size=MIN_PART_SIZE, concurrency=4)
    assert parts_in_flight(MIN_PART_SIZE, 4) == 4
    data = _payload(42 * MiB + 4321)
    sizes = [MiB, 300_000, 3 * MiB + 5, 64 * 1024]  # as a compressor hands them out
    with storage.writer("db/big.dump") as out:
        position = 0
        for n in range(10**6):
            if position >= len(data):
                break
            out.write(data[position:position + sizes[n % len(sizes)]])
            position += sizes[n % len(sizes)]
    head = minio.client().head_object(Bucket=s3_bucket, Key="db/big.dump")
    assert head["ContentLength"] == len(data)
    # Parts of exactly 5 MiB whatever the chunks, and the rest: nine parts.
    assert head["ETag"].strip('"').endswith("-9")
    assert hashlib.sha256(storage.read_bytes("db/big.dump")).digest() == \
        hashlib.sha256(data).digest()
    assert minio.pending_uploads(s3_bucket) == []


class Mc:
    """MinIO's admin client against the test server, with a config dir of its own."""

    def __init__(self, minio: MinioServer, home: Path) -> None:
        self.binary = require("mc")
        host = minio.endpoint.replace("http://", f"http://{MINIO_USER}:{MINIO_PASSWORD}@")
        self.env = {**os.environ, "MC_HOST_t": host, "HOME": str(home)}
        self.config = str(home / "mc")

    def __call__(self, *argv: str) -> None:
        result = subprocess.run([self.binary, "--config-dir", self.config, "--json",
                                 *argv], env=self.env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.requires_peer("mc")
def test_a_part_refused_mid_upload_aborts_it_and_leaves_nothing(
        minio: MinioServer, s3_bucket: str, tmp_path: Path) -> None:
    mc = Mc(minio, tmp_path)
    user, secret = f"writer-{uuid.uuid4().hex[:8]}", "writer-Secret-" + uuid.uuid4().hex
    # What the user keeps once its write permission is withdrawn: reading, listing and
    # aborting uploads, but no PutObject (which covers UploadPart).
    keep = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:ListBucket", "s3:ListBucketMultipartUploads",
                   "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
        "Resource": [f"arn:aws:s3:::{s3_bucket}", f"arn:aws:s3:::{s3_bucket}/*"]}]}
    policy = tmp_path / "no-put.json"
    policy.write_text(json.dumps(keep))
    no_put = f"no-put-{user}"
    mc("admin", "user", "add", "t", user, secret)
    mc("admin", "policy", "create", "t", no_put, str(policy))
    mc("admin", "policy", "attach", "t", "readwrite", "--user", user)

    storage = S3Storage(minio.settings(s3_bucket, access_key=user, secret_key=secret),
                        part_size=MIN_PART_SIZE, concurrency=4)
    data = _payload(60 * MiB)
    written = 0
    with pytest.raises(StorageError) as raised:
        with storage.writer("db/refused.dump") as out:
            for start in range(0, len(data), MiB):
                out.write(data[start:start + MiB])
                written += MiB
                if written == 4 * MIN_PART_SIZE:
                    # Four parts are out; the store refuses the next ones.
                    assert minio.pending_uploads(s3_bucket) == ["db/refused.dump"]
                    mc("admin", "policy", "attach", "t", no_put, "--user", user)
                    mc("admin", "policy", "detach", "t", "readwrite", "--user", user)
    message = raised.value.message
    assert message.startswith("cannot upload db/refused.dump: access denied to bucket")
    assert secret not in message and MINIO_PASSWORD not in message
    # The failure stopped the writing well before the end of the stream...
    assert written < len(data) - 2 * MIN_PART_SIZE
    # ...and the upload was aborted: no object, no open upload, no parts kept.
    assert minio.keys(s3_bucket) == []
    assert minio.pending_uploads(s3_bucket) == []
