"""A job's local folder, where the engine works, mirrored to the artifact store under `jobs/<id>/`.

With a local store the folder is the store's own and nothing is copied. With an object store it is a
folder of the worker's scratch: each checkpoint is uploaded whole before its row is recorded, checkpoints
the engine pruned are deleted from the store, a job that resumes here first downloads its stored
checkpoints, and the folder is removed once the job's end is recorded. Every store write is retried
through an outage for `storage_retry_seconds`; past it StoreUnavailable requeues the job.
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from app.core.config import Settings
from app.core.storage import ArtifactStore, open_store, under
from worker.transient import retry_store

T = TypeVar("T")
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "step-"
# Written last into a checkpoint: the engine resumes only from a folder that has it, and so does a download.
COMPLETE_MARK = "trainer_state.json"
# The engine's metrics log: kept with each checkpoint, so that a resumed run's curves start at step 0.
METRICS_LOG = "metrics.jsonl"


@dataclass(frozen=True)
class JobFolder:
    """A job's working folder and, when it is not the store's own, its mirror in the store."""

    job_id: str
    store: ArtifactStore
    path: Path
    mirrored: bool
    retry_seconds: float

    @classmethod
    def of(cls, job_id: str, settings: Settings) -> "JobFolder":
        """The job's folder: the local store's own, or one in the scratch for an object store."""
        store = open_store(settings)
        own = store.local_path(f"jobs/{job_id}")
        return cls(
            job_id=job_id,
            store=store,
            path=own or settings.scratch / "jobs" / job_id,
            mirrored=own is None,
            retry_seconds=settings.storage_retry_seconds,
        )

    @property
    def prefix(self) -> str:
        return f"jobs/{self.job_id}"

    def key(self, path: Path) -> str:
        """The store key of a file or folder inside the local folder."""
        return under(self.prefix, path.resolve().relative_to(self.path.resolve()).as_posix())

    def store_file(self, path: Path) -> str:
        """Upload one file of the folder; returns its key."""
        key = self.key(path)
        if self.mirrored:
            self._retrying(lambda: self.store.put_file(key, path), what=f"storing {key}")
        return key

    def store_tree(self, directory: Path) -> str:
        """Upload every file of a folder inside the job's folder; returns the folder's key."""
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            self.store_file(path)
        return self.key(directory)

    def store_checkpoint(self, directory: Path) -> str:
        """Upload a checkpoint whole, its completion mark last, then drop the stored ones pruned here."""
        if not self.mirrored:
            return self.key(directory)
        files = sorted(p for p in directory.rglob("*") if p.is_file())
        for path in sorted(files, key=lambda p: p.relative_to(directory).as_posix() == COMPLETE_MARK):
            self.store_file(path)
        if (self.path / METRICS_LOG).is_file():
            self.store_file(self.path / METRICS_LOG)
        self._retrying(self._delete_pruned, what=f"pruning {self.job_id}'s stored checkpoints")
        return self.key(directory)

    def fetch_checkpoints(self) -> int:
        """Download the stored complete checkpoints this folder lacks (another worker's); returns how many."""
        if not self.mirrored:
            return 0
        stored = self._retrying(self._stored_checkpoints, what=f"listing {self.job_id}'s checkpoints")
        local = self.path / CHECKPOINTS
        missing = [name for name in stored if not (local / name / COMPLETE_MARK).is_file()]
        for name in missing:
            self._fetch(f"{self.prefix}/{CHECKPOINTS}/{name}", local / name)
        metrics = self.path / METRICS_LOG
        if missing and not metrics.is_file():
            self._retrying(lambda: self._fetch_metrics(metrics), what=f"fetching {self.job_id}'s metrics")
        return len(missing)

    def _fetch(self, key: str, destination: Path) -> None:
        """Download a stored folder; it appears under its name only once whole."""
        partial = destination.with_name(f".{destination.name}.download")  # the engine skips dot folders
        shutil.rmtree(partial, ignore_errors=True)
        self._retrying(lambda: self.store.get_tree(key, partial), what=f"fetching {key}")
        shutil.rmtree(destination, ignore_errors=True)
        partial.rename(destination)

    def _fetch_metrics(self, destination: Path) -> None:
        key = f"{self.prefix}/{METRICS_LOG}"
        if self.store.size(key) is not None:
            self.store.get_file(key, destination)

    def remove_local(self) -> None:
        """Remove the scratch copy once the store holds what matters; the local store's folder stays."""
        if self.mirrored:
            shutil.rmtree(self.path, ignore_errors=True)

    def _stored_checkpoints(self) -> list[str]:
        """Names (`step-<n>`) of the checkpoints stored whole."""
        base = f"{self.prefix}/{CHECKPOINTS}/"
        relative = [stored.key.removeprefix(base) for stored in self.store.files_under(base)]
        marks = [name for name in relative if name.count("/") == 1 and name.endswith(f"/{COMPLETE_MARK}")]
        return sorted(name.split("/")[0] for name in marks if name.startswith(CHECKPOINT_PREFIX))

    def _delete_pruned(self) -> None:
        """Delete stored checkpoint folders that the engine no longer keeps locally."""
        base = f"{self.prefix}/{CHECKPOINTS}/"
        stored = {stored.key.removeprefix(base).split("/")[0] for stored in self.store.files_under(base)}
        local = self.path / CHECKPOINTS
        for name in sorted(stored):
            if name.startswith(CHECKPOINT_PREFIX) and not (local / name).is_dir():
                self.store.delete(f"{base}{name}")

    def _retrying(self, action: Callable[[], T], *, what: str) -> T:
        return retry_store(action, budget_seconds=self.retry_seconds, what=what)
