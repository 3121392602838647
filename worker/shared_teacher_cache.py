"""The teacher cache shared through the artifact store, under `teacher-cache/`, for workers on many machines.

Per key:
- `teacher-cache/<key>/uploads/<id>/<file>`: one writer's copy of the entry's files, never changed;
- `teacher-cache/<key>/manifest.json`: the commit, naming the upload that is the entry and each file's
  size and sha256. It is written with a conditional put (S3's If-None-Match), so of several writers of
  one key the first wins, the others delete their upload and take the winner's. Readers read only
  committed manifests, and check every file against it;
- `teacher-cache/<key>/used`: rewritten on each use. The key's last use is this object's LastModified
  (or the manifest's, before any use). The manifest itself is never rewritten: it is the commit, and
  putting it again after an eviction would commit an entry whose files are gone.

The bytes under `teacher-cache/` stay under the bound: before an upload, and again after its commit,
least recently used keys are evicted, manifest first, so readers stop finding them before their files
go. A reader that read a manifest just before its files went finds one missing and recomputes; a
committed entry with a missing or altered file is removed, so that the next writer can commit it again.
"""

import contextlib
import io
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.storage import ArtifactStore, StoredObject, size_and_sha256

logger = logging.getLogger(__name__)

PREFIX = "teacher-cache"
MANIFEST, USED, UPLOADS = "manifest.json", "used", "uploads"
# Uploads that no manifest names and nobody has written to for this long were left by a writer that died.
STALE_UPLOAD_SECONDS = 6 * 3600


class CorruptSharedEntry(Exception):
    """A committed entry whose files do not match its manifest; it has been removed from the store."""


@dataclass
class _KeyUsage:
    """What one key holds in the store: its bytes, whether it is committed, and when it was last used."""

    bytes: int = 0
    committed: bool = False
    last_used: float = 0.0
    newest: float = 0.0


class SharedTeacherCache:
    """Entries kept in an artifact store, at most `max_bytes` of them; see the module docstring."""

    def __init__(self, store: ArtifactStore, *, max_bytes: int) -> None:
        self.store, self.max_bytes = store, max_bytes

    def fetch(self, key: str, into: Path) -> bool:
        """Copy the committed entry into `into`, each file checked; False when there is none (any more)."""
        manifest = self._manifest(key)
        if manifest is None:
            return False
        try:
            for item in manifest["files"]:
                path = into / Path(item["name"]).name
                self.store.get_file(_upload_key(key, manifest["upload"], item["name"]), path)
                if size_and_sha256(path) != (item["bytes"], item["sha256"]):
                    self._remove_commit(key, manifest["upload"])
                    raise CorruptSharedEntry(f"{PREFIX}/{key}: {item['name']} fails its checksum; removed")
        except FileNotFoundError:
            # Evicted while read (its manifest is gone), or committed files lost: then it is removed.
            logger.info("teacher cache: entry %s lost files while it was read", key)
            self._remove_commit(key, manifest["upload"])
            return False
        self._record_use(key)
        return True

    def publish(self, key: str, folder: Path) -> bool:
        """Upload the entry's files, then commit them; False when another writer committed the key first."""
        files = sorted(path for path in folder.iterdir() if path.is_file())
        listing = [_described(path) for path in files]
        incoming = sum(item["bytes"] for item in listing)
        if incoming > self.max_bytes:
            logger.info("teacher cache: entry %s (%d bytes) is over the store's bound", key, incoming)
            return True
        self._make_room(incoming, keep=None)
        upload = uuid.uuid4().hex
        try:
            for path in files:
                self.store.put_file(_upload_key(key, upload, path.name), path)
            manifest = {"upload": upload, "files": listing, "bytes": incoming, "created_at": time.time()}
            won = self.store.put_if_absent(_key(key, MANIFEST), json.dumps(manifest, indent=1).encode())
        except BaseException:
            with contextlib.suppress(Exception):  # what is left goes as a stale upload
                self.store.delete(_key(key, UPLOADS, upload))
            raise
        if not won:
            self.store.delete(_key(key, UPLOADS, upload))
            return False
        self._record_use(key)
        self._make_room(0, keep=key)  # other writers may have committed meanwhile
        return True

    def touch(self, key: str) -> None:
        """Record a use of a committed key (a key no longer committed is left alone)."""
        if self.store.size(_key(key, MANIFEST)) is not None:
            self._record_use(key)

    def stored_bytes(self) -> int:
        """The bytes under `teacher-cache/`."""
        return sum(stored.bytes for stored in self.store.files_under(PREFIX))

    def _record_use(self, key: str) -> None:
        self.store.put_stream(_key(key, USED), io.BytesIO(str(time.time()).encode()))

    def _manifest(self, key: str) -> dict[str, Any] | None:
        """The committed manifest of a key, or None."""
        try:
            loaded: dict[str, Any] = json.loads(b"".join(self.store.iter_bytes(_key(key, MANIFEST))))
        except FileNotFoundError:
            return None
        return loaded

    def _remove_commit(self, key: str, upload: str) -> None:
        """Remove the committed entry of `key`, if it still names `upload`: manifest first, then its files."""
        manifest = self._manifest(key)
        if manifest is None or manifest.get("upload") != upload:
            return  # evicted or replaced meanwhile
        self.store.delete(_key(key, MANIFEST))
        self.store.delete(_key(key, USED))
        self.store.delete(_key(key, UPLOADS, upload))

    def _make_room(self, incoming: int, *, keep: str | None) -> None:
        """Evict least recently used keys, never `keep`, until `incoming` more bytes fit under the bound."""
        usage = _usage(self.store.files_under(PREFIX))
        total = sum(use.bytes for use in usage.values())
        now, evicted = time.time(), []
        for key, use in usage.items():
            if not use.committed and now - use.newest > STALE_UPLOAD_SECONDS:
                self.store.delete(_key(key))  # left by a writer that died, or a touch after an eviction
                total -= use.bytes
        committed = sorted((use.last_used, key) for key, use in usage.items() if use.committed)
        for _, key in committed:
            if total + incoming <= self.max_bytes:
                break
            if key == keep:
                continue
            manifest = self._manifest(key)
            if manifest is not None:
                self._remove_commit(key, manifest["upload"])
            total -= usage[key].bytes
            evicted.append(key)
        if evicted:
            logger.info("teacher cache: evicted %d least recently used entries from the store", len(evicted))


def _key(key: str, *parts: str) -> str:
    return "/".join((PREFIX, key, *parts))


def _upload_key(key: str, upload: str, name: str) -> str:
    return _key(key, UPLOADS, upload, name)


def _described(path: Path) -> dict[str, Any]:
    size, sha256 = size_and_sha256(path)
    return {"name": path.name, "bytes": size, "sha256": sha256}


def _usage(objects: list[StoredObject]) -> dict[str, _KeyUsage]:
    """Per key: its objects, bytes, whether a manifest commits it and when it was last used."""
    usage: dict[str, _KeyUsage] = {}
    for stored in objects:
        parts = stored.key.split("/")
        if len(parts) < 3:
            continue
        use = usage.setdefault(parts[1], _KeyUsage())
        modified = stored.modified.timestamp()
        use.bytes += stored.bytes
        use.newest = max(use.newest, modified)
        if parts[2] == MANIFEST:
            use.committed = True
        if parts[2] in (MANIFEST, USED):
            use.last_used = max(use.last_used, modified)
    return usage
