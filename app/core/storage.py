"""The artifact store: a directory that the API and every worker share (a volume or a network mount)."""

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024


def size_and_sha256(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a local file."""
    with path.open("rb") as stream:
        return path.stat().st_size, hashlib.file_digest(stream, "sha256").hexdigest()


class ArtifactStore:
    """Files addressed by relative keys such as `jobs/job_x/student.tar.gz`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        """The local path of a key; refuses keys that escape the root."""
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key escapes the artifact store: {key}")
        return path

    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]:
        """Write a stream to a key atomically; returns (size, sha256). Raises OverflowError past max_bytes."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        digest, size = hashlib.sha256(), 0
        try:
            with partial.open("wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise OverflowError(f"more than {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return size, digest.hexdigest()

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        """Stream a stored file in chunks."""
        with self.path(key).open("rb") as stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    def delete(self, key: str) -> None:
        """Remove a file or a directory tree; missing keys are fine."""
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
