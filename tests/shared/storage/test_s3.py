"""What only S3 storage does: metadata, prefix, SSE, bucket creation, readable errors."""

from __future__ import annotations

import hashlib
import socket
from itertools import accumulate

import pytest

from shared.config import S3Settings
from shared.errors import StorageError
from shared.storage.s3 import S3Storage, client_config, display_endpoint
from shared.storage.s3_upload import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, part_size
from tests.minio import MinioServer

WRONG_SECRET = "wrong-Secret-Key-7731"
MiB = 1024 * 1024


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("size", [100, 2 * MIN_PART_SIZE + 7])
def test_object_metadata_true_stores_the_checksums_on_every_object(
        minio: MinioServer, s3_bucket: str, size: int) -> None:
    storage = S3Storage(minio.settings(s3_bucket, object_metadata=True),
                        part_size=MIN_PART_SIZE)
    data = b"x" * size
    checksums = {"checksum-md5": hashlib.md5(data).hexdigest(),
                 "checksum-sha256": hashlib.sha256(data).hexdigest()}
    with storage.writer("db/a.dump") as out:
        out.write(data)
        out.set_metadata(checksums)
    head = minio.client().head_object(Bucket=s3_bucket, Key="db/a.dump")
    assert head["Metadata"] == checksums
    assert head["ContentLength"] == size
    assert storage.metadata("db/a.dump") == checksums


def test_by_default_only_single_put_objects_carry_metadata(
        minio: MinioServer, s3_bucket: str) -> None:
    # object_metadata is off by default: no server-side copy of multipart objects.
    storage = S3Storage(minio.settings(s3_bucket), part_size=MIN_PART_SIZE)
    for key, size in (("small", 10), ("large", MIN_PART_SIZE + 1)):
        with storage.writer(key) as out:
            out.write(b"z" * size)
            out.set_metadata({"checksum-md5": "m"})
    # A single PutObject carries metadata for free; a multipart object goes without.
    assert storage.metadata("small") == {"checksum-md5": "m"}
    assert storage.metadata("large") == {}
    assert storage.size("large") == MIN_PART_SIZE + 1


def test_prefix_places_keys_under_it_and_list_hides_it(minio: MinioServer,
                                                      s3_bucket: str) -> None:
    storage = S3Storage(minio.settings(s3_bucket, prefix="team/prod"))
    storage.put_bytes("db/a.dump", b"a")
    minio.client().put_object(Bucket=s3_bucket, Key="elsewhere.txt", Body=b"not ours")
    assert minio.keys(s3_bucket) == ["elsewhere.txt", "team/prod/db/a.dump"]
    assert list(storage.list()) == ["db/a.dump"]
    assert storage.read_bytes("db/a.dump") == b"a"
    storage.delete("db/a.dump")
    assert minio.keys(s3_bucket) == ["elsewhere.txt"]


def test_server_side_encryption_applies_to_single_and_multipart_objects(
        minio: MinioServer, s3_bucket: str) -> None:
    storage = S3Storage(minio.settings(s3_bucket, server_side_encryption="AES256"),
                        part_size=MIN_PART_SIZE)
    storage.put_bytes("small", b"s")
    with storage.writer("large") as out:
        out.write(b"L" * (MIN_PART_SIZE + 1))
        out.set_metadata({"checksum-md5": "m"})
    for key in ("small", "large"):
        assert minio.client().head_object(Bucket=s3_bucket, Key=key)[
            "ServerSideEncryption"] == "AES256"
    assert storage.read_bytes("large") == b"L" * (MIN_PART_SIZE + 1)


def test_create_bucket_creates_a_missing_bucket(minio: MinioServer) -> None:
    bucket = "created-by-backup-api"
    storage = S3Storage(minio.settings(bucket, create_bucket=True))
    assert not minio.bucket_exists(bucket)
    storage.put_bytes("db/a.dump", b"a")  # the first write creates it
    assert minio.bucket_exists(bucket)
    S3Storage(minio.settings(bucket, create_bucket=True)).check()  # existing is fine


def _bad_storages(minio: MinioServer, bucket: str) -> dict[str, tuple[S3Storage, str]]:
    """Each misconfiguration and the phrase its message must contain."""
    closed = f"http://127.0.0.1:{_closed_port()}"
    return {
        "wrong credentials": (S3Storage(minio.settings(bucket, secret_key=WRONG_SECRET)),
                              "S3 rejected the credentials (SignatureDoesNotMatch)"),
        "unknown access key": (S3Storage(minio.settings(bucket, access_key="nobody-here",
                                                        secret_key=WRONG_SECRET)),
                               "S3 rejected the credentials (InvalidAccessKeyId)"),
        "missing bucket": (S3Storage(minio.settings("no-such-bucket")),
                           "bucket 'no-such-bucket' at http://127.0.0.1:"
                           f"{minio.port} does not exist (create it, or set "
                           "storage.s3.create_bucket: true)"),
        "unreachable": (S3Storage(minio.settings(bucket, endpoint_url=closed)),
                        f"cannot reach the S3 endpoint {closed} (bucket {bucket!r})"),
    }


@pytest.mark.parametrize("case", ["wrong credentials", "unknown access key",
                                  "missing bucket", "unreachable"])
def test_check_says_what_is_wrong(minio: MinioServer, s3_bucket: str, case: str) -> None:
    storage, expected = _bad_storages(minio, s3_bucket)[case]
    with pytest.raises(StorageError) as raised:
        storage.check()
    message = raised.value.message
    assert expected in message
    assert storage.bucket in message and storage.endpoint in message
    assert WRONG_SECRET not in message and "minio-Test-Secret" not in message


@pytest.mark.parametrize("case", ["wrong credentials", "missing bucket", "unreachable"])
@pytest.mark.parametrize("size", [100, 2 * MIN_PART_SIZE])
def test_writing_to_unusable_s3_fails_readably_and_leaves_nothing(
        minio: MinioServer, s3_bucket: str, case: str, size: int) -> None:
    storage, expected = _bad_storages(minio, s3_bucket)[case]
    with pytest.raises(StorageError) as raised:
        with storage.writer("db/a.dump") as out:
            for _ in range(size // MiB + 1):
                out.write(b"d" * min(size, MiB))
    assert expected in raised.value.message
    assert raised.value.message.startswith("cannot upload db/a.dump: ")
    assert WRONG_SECRET not in raised.value.message
    assert minio.keys(s3_bucket) == [] and minio.pending_uploads(s3_bucket) == []
    assert not minio.bucket_exists("no-such-bucket")


def test_path_style_is_the_default_with_an_endpoint() -> None:
    def style(**kw: object) -> str:
        config = client_config(S3Settings(bucket="b", **kw))  # type: ignore[arg-type]
        return str(config.s3["addressing_style"])

    assert style(endpoint_url="http://minio:9000") == "path"
    assert style(endpoint_url="https://x.r2.cloudflarestorage.com", path_style=False) == \
        "virtual"
    assert style() == "auto"
    assert style(path_style=True) == "path"
    config = client_config(S3Settings(bucket="b"))
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"


def test_endpoint_in_messages_never_carries_userinfo() -> None:
    settings = S3Settings(bucket="b", endpoint_url="https://key:sec@s3.example.com:9000/x")
    assert display_endpoint(settings) == "https://s3.example.com:9000/x"
    assert display_endpoint(S3Settings(bucket="b", region="eu-west-1")) == \
        "AWS S3 (eu-west-1)"


def _capacities(**kw: int) -> list[int]:
    """Bytes held by the first 1, 2, ... 10,000 parts."""
    return list(accumulate(part_size(n, **kw) for n in range(1, MAX_PARTS + 1)))


def test_parts_grow_so_a_terabyte_fits_in_10000_parts() -> None:
    assert part_size(1) == 8 * MiB
    capacities = _capacities()
    assert capacities[-1] > 1.5 * 2**40  # over 1.5 TiB without a size hint
    assert all(MIN_PART_SIZE <= part_size(n) <= MAX_PART_SIZE for n in (1, 9999, 10000))
    # 1 TB needs parts of at most 256 MiB: the buffer stays bounded well below 1 GiB.
    needed = next(n for n, total in enumerate(capacities, 1) if total >= 10**12)
    assert needed < MAX_PARTS and part_size(needed) <= 256 * MiB
    # A size hint picks a larger first part right away.
    assert part_size(1, size_hint=5 * 2**40) > 8 * MiB
    assert _capacities(size_hint=5 * 2**40)[MAX_PARTS // 2] > 5 * 2**40
