"""S3-compatible storage (AWS S3, MinIO, Cloudflare R2, Backblaze B2) through boto3.

Compatibility choices:
- Path-style addressing (``http://host/bucket/key``) is on by default when an
  ``endpoint_url`` is set: MinIO and most self-hosted stores have no wildcard DNS.
- Request checksums are computed and response checksums validated only "when
  required": since botocore 1.36 the SDK otherwise sends CRC headers that R2, B2
  and older MinIO reject.
- The checksums live on the row and in the sidecar object. As object metadata they
  would need a server-side copy of the object onto itself after a multipart upload
  (S3 fixes metadata before the first part), which rewrites the data: 1.6x the time
  of the upload on MinIO. So only ``object_metadata: true`` asks for it; an object
  sent in one ``PutObject`` carries the metadata anyway.
- Payloads are signed (SigV4 SHA-256) as botocore does by default, which the store
  checks: over plain HTTP that is the only integrity check of each part in transit.

Error meaning (see ``shared.storage.base``): every message names the bucket and the
endpoint, says whether the credentials, the bucket or the network is at fault, and
never contains the secret key.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, Literal, cast
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from shared.config import S3Settings
from shared.errors import ArtifactNotFound, StorageError, redact
from shared.storage.base import Storage
from shared.storage.s3_upload import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PART_SIZE,
    MultipartWriter,
)

_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
                     "ExpiredToken", "InvalidClientTokenId", "AuthorizationHeaderMalformed"}
_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError,
                ReadTimeoutError)


def client_config(settings: S3Settings, *, probe: bool = False) -> Config:
    """Return the botocore configuration; ``probe`` fails fast for readiness checks."""
    style: Literal["auto", "path", "virtual"]
    if settings.path_style is None:
        style = "path" if settings.endpoint_url else "auto"
    else:
        style = "path" if settings.path_style else "virtual"
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": style},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 1 if probe else 4, "mode": "standard"},
        # Room for the parts of the backups a worker process runs at once.
        max_pool_connections=4 * DEFAULT_CONCURRENCY,
        connect_timeout=3 if probe else 10,
        read_timeout=10 if probe else 120,
    )


def display_endpoint(settings: S3Settings) -> str:
    """Return the endpoint for messages, without any user:password part."""
    if not settings.endpoint_url:
        return f"AWS S3 ({settings.region or 'default region'})"
    parts = urlsplit(settings.endpoint_url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


class S3Storage(Storage):
    kind = "s3"

    def __init__(self, settings: S3Settings, *, part_size: int = DEFAULT_PART_SIZE,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix.strip("/")
        self.endpoint = display_endpoint(settings)
        self._part_size = part_size
        self._concurrency = concurrency
        # One session for both clients: the S3 service model is loaded once.
        self._session = boto3.session.Session()
        self._client = self._make_client(probe=False)
        self._probe = self._make_client(probe=True)
        self._bucket_ready = not settings.create_bucket
        self._extra = ({"ServerSideEncryption": settings.server_side_encryption}
                       if settings.server_side_encryption else {})

    def _make_client(self, *, probe: bool) -> Any:
        region = self.settings.region or ("us-east-1" if self.settings.endpoint_url else None)
        return self._session.client(
            "s3", endpoint_url=self.settings.endpoint_url, region_name=region,
            aws_access_key_id=self.settings.access_key,
            aws_secret_access_key=self.settings.secret_key,
            config=client_config(self.settings, probe=probe))

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def writer(self, key: str, size_hint: int | None = None) -> Iterator[MultipartWriter]:
        """Stream into a multipart upload; publish on success, abort on any error."""
        if not self._bucket_ready:
            self.check()
        upload = MultipartWriter(self._client, self.bucket, self._key(key), self._extra,
                                 self._describe, base_part_size=self._part_size,
                                 size_hint=size_hint, concurrency=self._concurrency,
                                 copy_metadata=self.settings.object_metadata)
        try:
            yield upload
        except BaseException:
            upload.abort()
            raise
        upload.publish()

    def open(self, key: str) -> BinaryIO:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._describe(exc, f"cannot read {key}", key=key) from exc
        return cast(BinaryIO, io.BufferedReader(_Body(response["Body"], self, key)))

    def size(self, key: str) -> int:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:  # noqa: BLE001
            raise self._describe(exc, f"cannot stat {key}", key=key) from exc
        return int(head["ContentLength"])

    def metadata(self, key: str) -> dict[str, str]:
        """Return the user metadata stored with ``key`` (e.g. its checksums)."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:  # noqa: BLE001
            raise self._describe(exc, f"cannot stat {key}", key=key) from exc
        return dict(head.get("Metadata") or {})

    def delete(self, key: str) -> None:
        """Delete the object and abort any multipart upload left open on the same key.

        A worker killed mid-upload cannot abort its own upload; the reaper deletes the
        key, and this is where those orphaned parts go.
        """
        full = self._key(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=full)
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=full)
            for page in pages:
                for upload in page.get("Uploads", ()):
                    if upload["Key"] == full:
                        self._client.abort_multipart_upload(
                            Bucket=self.bucket, Key=full, UploadId=upload["UploadId"])
        except Exception as exc:  # noqa: BLE001
            raise self._describe(exc, f"cannot delete {key}") from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root + prefix)
            for page in pages:
                keys += [item["Key"][len(root):] for item in page.get("Contents", ())]
        except Exception as exc:  # noqa: BLE001
            raise self._describe(exc, "cannot list objects") from exc
        return iter(sorted(keys))

    def check(self) -> None:
        """List one key to prove the endpoint, the credentials and the bucket work."""
        try:
            self._probe.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except ClientError as exc:
            if _code(exc) != "NoSuchBucket" or not self.settings.create_bucket:
                raise self._describe(exc) from exc
            self._create_bucket()
        except Exception as exc:  # noqa: BLE001
            raise self._describe(exc) from exc
        self._bucket_ready = True

    def _create_bucket(self) -> None:
        region = self.settings.region
        options: dict[str, Any] = {}
        if region and region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._probe.create_bucket(Bucket=self.bucket, **options)
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._describe(exc, "cannot create the bucket") from exc

    def _describe(self, exc: BaseException, action: str = "", key: str | None = None
                  ) -> StorageError:
        """Turn a boto3 error into a readable ``StorageError`` naming bucket and endpoint."""
        if isinstance(exc, StorageError):
            return exc
        where = f"bucket {self.bucket!r} at {self.endpoint}"
        if isinstance(exc, ClientError):
            code = _code(exc)
            if key is not None and code in _MISSING_KEY_CODES:
                return ArtifactNotFound(f"artifact {key} not found in {where}")
            if code == "NoSuchBucket":
                hint = "" if self.settings.create_bucket else \
                    " (create it, or set storage.s3.create_bucket: true)"
                text = f"{where} does not exist{hint}"
            elif code in _CREDENTIAL_CODES:
                text = (f"S3 rejected the credentials ({code}) for {where}: check "
                        "storage.s3.access_key and secret_key")
            elif code in ("AccessDenied", "403"):
                text = f"access denied to {where}: the credentials lack permission"
            else:
                message = exc.response.get("Error", {}).get("Message") or str(exc)
                text = f"S3 error {code} for {where}: {message}"
        elif isinstance(exc, NoCredentialsError):
            text = f"no S3 credentials for {where}: set storage.s3.access_key and secret_key"
        elif isinstance(exc, _UNREACHABLE):
            text = f"cannot reach the S3 endpoint {self.endpoint} (bucket {self.bucket!r}): " \
                   f"{type(exc).__name__}"
        elif isinstance(exc, BotoCoreError):
            text = f"S3 client error for {where}: {exc}"
        else:
            text = f"S3 storage failed for {where}: {type(exc).__name__}: {exc}"
        message = f"{action}: {text}" if action else text
        return StorageError(redact(message, [self.settings.secret_key]))


class _Body(io.RawIOBase):
    """A streaming GET body whose read errors become ``StorageError``."""

    def __init__(self, body: Any, storage: S3Storage, key: str) -> None:
        self._body = body
        self._storage = storage
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:  # noqa: BLE001
            raise self._storage._describe(exc, f"cannot read {self._key}") from exc
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
