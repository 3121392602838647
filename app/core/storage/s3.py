"""An S3-compatible object store (AWS S3, GCS's S3 API, Ceph, R2, moto) through boto3.

Endpoint, region and credentials come from the standard AWS variables (`AWS_ENDPOINT_URL_S3`,
`AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...). Large files move in parts, a few at a time, so no file is held
whole in memory; botocore retries throttling, server errors and dropped connections with backoff, and
what still fails is raised as `StoreUnavailable`.
"""

import hashlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.core.storage.base import CHUNK, ArtifactStore, StoredObject, StoreUnavailable, checked_key

PART_BYTES = 8 * 1024 * 1024
# Parts read ahead of the upload threads: bounds an upload's memory to about PARTS_IN_MEMORY x PART_BYTES.
PARTS_IN_MEMORY = 4
MISSING = {"404", "NoSuchKey", "NotFound"}
TAKEN = {"412", "PreconditionFailed", "409", "ConditionalRequestConflict"}


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` as (bucket, prefix); raises ValueError for anything else."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
    return parsed.netloc, parsed.path.strip("/")


def _transfer_config() -> TransferConfig:
    config = TransferConfig(
        multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=PARTS_IN_MEMORY
    )
    config.max_in_memory_upload_chunks = PARTS_IN_MEMORY
    config.max_in_memory_download_chunks = PARTS_IN_MEMORY
    return config


class _HashingReader:
    """A read-only stream that counts and hashes what passes through it, up to a limit."""

    def __init__(self, stream: BinaryIO, max_bytes: int | None) -> None:
        self.stream, self.max_bytes = stream, max_bytes
        self.size, self.digest = 0, hashlib.sha256()

    def read(self, amount: int = -1) -> bytes:
        chunk = self.stream.read(amount)
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise OverflowError(f"more than {self.max_bytes} bytes")
        self.digest.update(chunk)
        return chunk


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Store failures as Python's: missing keys as FileNotFoundError, outages as StoreUnavailable."""
    try:
        yield
    except ClientError as error:
        if _code(error) in MISSING:
            raise FileNotFoundError(what) from error
        if _status(error) >= 500 or _code(error) in {"SlowDown", "RequestTimeout", "ServiceUnavailable"}:
            raise StoreUnavailable(f"the object store failed on {what}: {error}") from error
        raise
    except BotoCoreError as error:
        raise StoreUnavailable(f"the object store did not answer on {what}: {error}") from error


class S3Store(ArtifactStore):
    """Keys live below `s3://bucket/prefix`."""

    def __init__(self, url: str, *, public_endpoint_url: str | None = None, retry_attempts: int = 8) -> None:
        self.url = url
        self.bucket, self.prefix = parse_s3_url(url)
        config = Config(
            retries={"max_attempts": retry_attempts, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=max(10, 2 * PARTS_IN_MEMORY),
            # botocore presigns with the retired SigV2 by default in us-east-1; newer regions refuse it.
            signature_version="s3v4",
        )
        session = boto3.session.Session()
        self.client = session.client("s3", config=config)
        # Presigned URLs are for clients, which may reach the store at another address than the service.
        self.signer = (
            session.client("s3", config=config, endpoint_url=public_endpoint_url)
            if public_endpoint_url
            else self.client
        )
        self.transfer = _transfer_config()
        self._lock = threading.Lock()

    def _key(self, key: str) -> str:
        key = checked_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def local_path(self, key: str) -> Path | None:
        return None

    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]:
        reader = _HashingReader(stream, max_bytes)
        with _translated(f"writing {key}"):
            self.client.upload_fileobj(reader, self.bucket, self._key(key), Config=self.transfer)
        return reader.size, reader.digest.hexdigest()

    def put_file(self, key: str, path: Path) -> None:
        with _translated(f"writing {key}"):
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        try:
            with _translated(f"writing {key}"):
                self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except ClientError as error:
            if _code(error) in TAKEN:
                return False
            raise
        return True

    def get_file(self, key: str, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        # Named for this call alone: two processes may fetch the same key to the same place at once.
        partial = destination.with_name(f"{destination.name}.{uuid.uuid4().hex}.partial")
        try:
            with _translated(f"reading {key}"):
                self.client.download_file(self.bucket, self._key(key), str(partial), Config=self.transfer)
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with _translated(f"reading {key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        return _chunks(body, what=f"reading {key}")

    def size(self, key: str) -> int | None:
        try:
            with _translated(f"looking up {key}"):
                head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return None
        return int(head["ContentLength"])

    def files_under(self, prefix: str) -> list[StoredObject]:
        folder = self._key(prefix).rstrip("/") + "/"
        found: list[StoredObject] = []
        with _translated(f"listing {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder
            ):
                found.extend(
                    StoredObject(
                        key=self._relative(item["Key"]), bytes=item["Size"], modified=item["LastModified"]
                    )
                    for item in page.get("Contents", [])
                )
        return found

    def delete(self, key: str) -> None:
        keys = [self._key(key), *(self._key(stored.key) for stored in self.files_under(key))]
        with _translated(f"deleting {key}"):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": name} for name in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def presigned_url(self, key: str, *, seconds: int, filename: str) -> str | None:
        params = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        }
        url: str = self.signer.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)
        return url

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist (for local stores and tests; production buckets exist)."""
        with self._lock, _translated(f"creating bucket {self.bucket}"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as error:
                if _code(error) not in MISSING:
                    raise
                self.client.create_bucket(Bucket=self.bucket)


def _chunks(body: Any, *, what: str) -> Iterator[bytes]:
    with _translated(what):
        yield from body.iter_chunks(CHUNK)
    body.close()
