"""Teacher outputs on disk: one directory per key, safetensors shards read through memory maps.

An entry `<root>/<key>/` holds:
- `manifest.json`: the fields, the rows, and each file's size and sha256;
- `index.safetensors`: each row's example hash (16 bytes) and token count;
- `shard-NNNNN.safetensors`: per field one flat tensor, the shard's rows one after the other;
- `used`: touched on every use; its time orders least-recently-used eviction.

Entries are written under a temporary name and renamed into place, so a reader sees a whole entry
or none; a file that fails its checksum makes the entry unusable, and the caller recomputes it.
"""

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from engine.teacher_cache.fields import STORAGE_DTYPES, TeacherField, TeacherFields

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SHARD_BYTES = 64 * 1024 * 1024
MANIFEST, INDEX, USED = "manifest.json", "index.safetensors", "used"
TEMPORARY_PREFIX = ".partial-"
STALE_TEMPORARY_SECONDS = 24 * 3600


class CorruptEntry(Exception):
    """An entry that cannot be read as written: missing, truncated or altered files."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fields_to_json(fields: TeacherFields) -> dict[str, Any]:
    """The fields as the manifest stores them."""
    return {
        name: {"shape": list(field.shape), "dtype": field.dtype} for name, field in sorted(fields.items())
    }


class EntryWriter:
    """Writes one entry row by row into a temporary directory; `commit` renames it into place."""

    def __init__(self, root: Path, key: str, fields: TeacherFields, description: dict[str, Any]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root, self.key, self.fields, self.description = root, key, fields, description
        self.path = root / f"{TEMPORARY_PREFIX}{key}-{uuid.uuid4().hex[:8]}"
        self.path.mkdir()
        self.hashes: list[bytes] = []
        self.lengths: list[int] = []
        self.shards: list[dict[str, Any]] = []
        self._pending: dict[str, list[Tensor]] = {name: [] for name in fields}
        self._pending_rows = 0
        self._pending_bytes = 0

    def add(self, example_hash: bytes, length: int, values: dict[str, Tensor]) -> None:
        """Append one example's values, each already cut to its length and in its storage dtype."""
        for name, field in self.fields.items():
            value = values[name]
            if (
                tuple(value.shape) != field.example_shape(length)
                or value.dtype != STORAGE_DTYPES[field.dtype]
            ):
                raise ValueError(f"field {name}: got {tuple(value.shape)} {value.dtype} for {length} tokens")
            self._pending[name].append(value.reshape(-1))
            self._pending_bytes += value.numel() * value.element_size()
        self.hashes.append(example_hash)
        self.lengths.append(length)
        self._pending_rows += 1
        if self._pending_bytes >= SHARD_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending_rows:
            return
        name = f"shard-{len(self.shards):05d}.safetensors"
        tensors = {field: torch.cat(values).contiguous() for field, values in self._pending.items()}
        save_file(tensors, str(self.path / name))
        self.shards.append(
            {"file": name, "rows": self._pending_rows, "sha256": file_sha256(self.path / name)}
        )
        self._pending = {field: [] for field in self.fields}
        self._pending_rows = self._pending_bytes = 0

    def commit(self) -> Path:
        """Finish the files and move the entry into place; another writer's entry of the same key wins."""
        self._flush()
        index = {
            "hashes": torch.tensor(np.frombuffer(b"".join(self.hashes), dtype=np.uint8).reshape(-1, 16)),
            "lengths": torch.tensor(self.lengths, dtype=torch.int32),
        }
        save_file(index, str(self.path / INDEX))
        files = [*(shard["file"] for shard in self.shards), INDEX]
        manifest = {
            "version": FORMAT_VERSION,
            "key": self.key,
            "description": self.description,
            "fields": fields_to_json(self.fields),
            "rows": len(self.lengths),
            "shards": self.shards,
            "index_sha256": file_sha256(self.path / INDEX),
            "bytes": sum((self.path / name).stat().st_size for name in files),
            "created_at": time.time(),
        }
        (self.path / MANIFEST).write_text(json.dumps(manifest, indent=1))
        (self.path / USED).touch()
        target = self.root / self.key
        try:
            os.rename(self.path, target)
        except OSError:  # written meanwhile by another job: keep theirs
            self.abort()
        return target

    def abort(self) -> None:
        """Remove the partial entry."""
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class _Shard:
    handle: Any
    slices: dict[str, Any]


class StoreEntry:
    """A checked, memory-mapped entry: examples are read by row, a batch at a time."""

    def __init__(self, path: Path, fields: TeacherFields) -> None:
        self.path, self.fields = path, fields
        try:
            self.manifest = json.loads((path / MANIFEST).read_text())
            self._check_manifest()
            index = self._open(INDEX, self.manifest["index_sha256"])
            hashes = index.get_tensor("hashes").numpy()
            self.lengths: list[int] = index.get_tensor("lengths").tolist()
            self._shards = [self._open_shard(shard) for shard in self.manifest["shards"]]
        except CorruptEntry:
            raise
        except Exception as error:  # unreadable JSON, missing keys or files, a bad safetensors header
            raise CorruptEntry(f"{type(error).__name__}: {error}") from error
        if len(self.lengths) != self.manifest["rows"] or hashes.shape != (len(self.lengths), 16):
            raise CorruptEntry("the index does not match the manifest's row count")
        self.rows = {bytes(row): number for number, row in enumerate(hashes)}
        self._locate()
        self.nbytes = directory_bytes(path)
        (path / USED).touch()

    def _check_manifest(self) -> None:
        if self.manifest.get("version") != FORMAT_VERSION:
            raise CorruptEntry(f"format version {self.manifest.get('version')}, expected {FORMAT_VERSION}")
        if self.manifest.get("fields") != fields_to_json(self.fields):
            raise CorruptEntry("the stored fields differ from the ones asked for")

    def _open(self, name: str, sha256: str) -> Any:
        path = self.path / name
        if file_sha256(path) != sha256:
            raise CorruptEntry(f"{name} fails its checksum")
        return safe_open(str(path), framework="pt")

    def _open_shard(self, shard: dict[str, Any]) -> _Shard:
        handle = self._open(shard["file"], shard["sha256"])
        return _Shard(handle, {name: handle.get_slice(name) for name in self.fields})

    def _locate(self) -> None:
        """Each row's shard and, per field, where its values start in that shard's flat tensor."""
        self._shard_of_row = np.zeros(len(self.lengths), dtype=np.int64)
        self._start = {name: np.zeros(len(self.lengths), dtype=np.int64) for name in self.fields}
        first = 0
        for number, (shard, entry) in enumerate(zip(self._shards, self.manifest["shards"], strict=True)):
            rows = range(first, first + int(entry["rows"]))
            self._shard_of_row[first : rows.stop] = number
            for name, field in self.fields.items():
                sizes = np.array([field.numel(self.lengths[row]) for row in rows], dtype=np.int64)
                self._start[name][first : rows.stop] = np.cumsum(sizes) - sizes
                if int(sizes.sum()) != shard.slices[name].get_shape()[0]:
                    raise CorruptEntry(f"{entry['file']}: field {name} has the wrong number of values")
            first = rows.stop
        if first != len(self.lengths):
            raise CorruptEntry("the shards do not hold every row")

    def example(self, row: int) -> dict[str, Tensor]:
        """One row's values, in their stored dtype and shape."""
        shard, length = self._shards[self._shard_of_row[row]], self.lengths[row]
        values = {}
        for name, field in self.fields.items():
            start = int(self._start[name][row])
            flat = shard.slices[name][start : start + field.numel(length)]
            values[name] = flat.reshape(field.example_shape(length))
        return values

    def batch(self, rows: list[int], width: int, device: torch.device) -> dict[str, Tensor]:
        """Rows as a right-padded batch of `width` tokens; floats as float32, indices as int64."""
        examples = [self.example(row) for row in rows]
        batched = {}
        for name, field in self.fields.items():
            dtype = torch.int64 if field.dtype == "int32" else torch.float32
            batched[name] = field.pad(
                [example[name] for example in examples], width, dtype=dtype, device=device
            )
        return batched


def entry_paths(root: Path) -> Iterator[Path]:
    """The finished entries under `root`."""
    if root.is_dir():
        for path in root.iterdir():
            if path.is_dir() and not path.name.startswith(TEMPORARY_PREFIX) and (path / MANIFEST).exists():
                yield path


def directory_bytes(path: Path) -> int:
    """Bytes of the files directly inside `path`."""
    return sum(item.stat().st_size for item in path.iterdir() if item.is_file())


def remove_entry(path: Path) -> None:
    """Delete an entry; readers that mapped its files keep reading them until they close."""
    shutil.rmtree(path, ignore_errors=True)


def make_room(root: Path, *, incoming: int, max_bytes: int, keep: str | None = None) -> list[str]:
    """Evict least recently used entries, never `keep`, until `incoming` more bytes fit; their keys."""
    now = time.time()
    for path in root.glob(f"{TEMPORARY_PREFIX}*") if root.is_dir() else []:
        if now - path.stat().st_mtime > STALE_TEMPORARY_SECONDS:  # left by a writer that died
            shutil.rmtree(path, ignore_errors=True)
    entries = []
    for path in entry_paths(root):
        try:
            entries.append(((path / USED).stat().st_mtime, directory_bytes(path), path))
        except FileNotFoundError:  # evicted meanwhile by another job
            continue
    total = sum(size for _, size, _ in entries)
    evicted = []
    for _, size, path in sorted(entries, key=lambda entry: entry[0]):
        if total + incoming <= max_bytes:
            break
        if path.name == keep:
            continue
        remove_entry(path)
        total -= size
        evicted.append(path.name)
    if evicted:
        logger.info("teacher cache: evicted %d least recently used entries", len(evicted))
    return evicted


def describe_field(field: TeacherField) -> str:
    """A short shape string such as `L x 384 float16`."""
    return " x ".join(str(dim) for dim in field.shape) + f" {field.dtype}"
