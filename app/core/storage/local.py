"""The embedded default store: a folder on this machine (or a volume every process mounts)."""

import hashlib
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from app.core.storage.base import CHUNK, ArtifactStore, StoredObject, checked_key


class LocalStore(ArtifactStore):
    """Keys are paths below a root folder; writes go to a partial file that is renamed when whole."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def path(self, key: str) -> Path:
        """The local path of a key; refuses keys that escape the root."""
        path = (self.root / checked_key(key)).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key escapes the artifact store: {key}")
        return path

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    def put_stream(self, key: str, stream: BinaryIO, *, max_bytes: int | None = None) -> tuple[int, str]:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
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

    def put_file(self, key: str, path: Path) -> None:
        target = self.path(key)
        if target == path.resolve():
            return
        with path.open("rb") as stream:
            self.put_stream(key, stream)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with target.open("xb") as out:  # O_EXCL: exactly one writer creates it
                out.write(data)
        except FileExistsError:
            return False
        return True

    def get_file(self, key: str, destination: Path) -> None:
        source = self.path(key)
        if source == destination.resolve():
            return
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f"{destination.name}.{os.getpid()}.partial")
        try:
            shutil.copyfile(source, partial)
            partial.replace(destination)
        finally:
            partial.unlink(missing_ok=True)

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with self.path(key).open("rb") as stream:
            while chunk := stream.read(CHUNK):
                yield chunk

    def size(self, key: str) -> int | None:
        path = self.path(key)
        return path.stat().st_size if path.is_file() else None

    def files_under(self, prefix: str) -> list[StoredObject]:
        folder = self.path(prefix)
        if not folder.is_dir():
            return []
        root = self.root.resolve()
        return [
            StoredObject(
                key=path.relative_to(root).as_posix(),
                bytes=(stat := path.stat()).st_size,
                modified=datetime.fromtimestamp(stat.st_mtime, UTC),
            )
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.name.endswith(".partial")
        ]

    def delete(self, key: str) -> None:
        path = self.path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
