"""The artifact store's interface: files addressed by relative keys such as `jobs/job_x/student.tar.gz`."""

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

CHUNK = 1024 * 1024


class StoreUnavailable(ConnectionError):
    """The store did not answer, or answered with a server error, after its retries: a transient failure."""


@dataclass(frozen=True)
class StoredObject:
    """One stored file: its key, size and last change."""

    key: str
    bytes: int
    modified: datetime


def size_and_sha256(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a local file."""
    with path.open("rb") as stream:
        return path.stat().st_size, hashlib.file_digest(stream, "sha256").hexdigest()


def checked_key(key: str) -> str:
    """A key as stored: relative, slash-separated, with no `..`; raises ValueError otherwise."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or "\\" in key:
        raise ValueError(f"not a valid artifact key: {key!r}")
    return str(path)


def under(prefix: str, key: str) -> str:
    """The key `key` below the folder `prefix`."""
    return checked_key(f"{prefix.rstrip('/')}/{key}") if prefix else checked_key(key)


class ArtifactStore(ABC):
    """Uploads, checkpoints, artifacts and teacher outputs, in a local folder or an object store."""

    url: str

    @abstractmethod
    def local_path(self, key: str) -> Path | None:
        """The key's file on this machine when the store is a local folder; None for a remote store."""

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]:
        """Write a stream to a key, whole or not at all; (size, sha256). OverflowError past max_bytes."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Copy a local file to a key (in parts when large)."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write a small object unless the key exists; False when another writer got there first."""

    @abstractmethod
    def get_file(self, key: str, destination: Path) -> None:
        """Copy a key to a local file, which appears whole or not at all; FileNotFoundError if missing."""

    @abstractmethod
    def iter_bytes(self, key: str) -> Iterator[bytes]:
        """Stream a stored file in chunks; FileNotFoundError if missing."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The size of a stored file; None when there is none."""

    @abstractmethod
    def files_under(self, prefix: str) -> list[StoredObject]:
        """Every file under a folder, with keys relative to the store."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove a file or everything under a folder; missing keys are fine."""

    def presigned_url(self, key: str, *, seconds: int, filename: str) -> str | None:
        """A short-lived URL that downloads the key without credentials; None where the store has none."""
        return None

    def exists(self, key: str) -> bool:
        """Whether a file, or any file under a folder, is stored at the key."""
        return self.size(key) is not None or bool(self.files_under(key))

    def put_tree(self, prefix: str, directory: Path) -> list[str]:
        """Copy every file of a local folder under a key prefix; returns the keys written."""
        keys = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            key = under(prefix, path.relative_to(directory).as_posix())
            self.put_file(key, path)
            keys.append(key)
        return keys

    def get_tree(self, prefix: str, directory: Path) -> int:
        """Copy every file under a key prefix into a local folder; returns how many were copied."""
        objects = self.files_under(prefix)
        base = prefix.rstrip("/") + "/"
        for stored in objects:
            self.get_file(stored.key, directory / stored.key.removeprefix(base))
        return len(objects)
