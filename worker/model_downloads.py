"""Models kept in an object store (an `s3://` model root, a job's student), as local folders to load.

Each is copied once into `scratch/models/<folder>/<version>/`, the version being a digest of its objects'
keys, sizes and change times: the next job that names the same unchanged model loads the copy without a
download, a changed model gets a new copy and the old one is removed. A copy appears by a rename, whole
or not at all, so two jobs that fetch the same model at once both end with a complete folder.
"""

import hashlib
import os
import shutil
from pathlib import Path

from app.core.config import Settings
from app.core.storage import StoredObject
from app.jobs.lifecycle import ModelLocation, ModelRefError, StoredModel
from worker.transient import retry_store


def local_model(location: ModelLocation, *, settings: Settings) -> Path:
    """A local folder of the model: itself when it is local, else a current copy in the scratch."""
    if isinstance(location, Path):
        return location
    return retry_store(
        lambda: _fetched(location, settings.scratch / "models"),
        budget_seconds=settings.storage_retry_seconds,
        what=f"fetching the model {location}",
    )


def _fetched(model: StoredModel, cache: Path) -> Path:
    """The model's current copy in `cache`, downloaded unless it is there already."""
    objects = model.store.files_under(model.key)
    if not objects:
        raise ModelRefError(f"the model '{model}' is no longer in the store", field="path")
    folder = cache / _digest(str(model))
    copy = folder / _version(objects, prefix=model.key)
    if not copy.is_dir():
        partial = folder / f".{copy.name}.{os.getpid()}.download"
        shutil.rmtree(partial, ignore_errors=True)
        model.store.get_tree(model.key, partial)
        try:
            partial.rename(copy)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)  # another job put the same copy there first
            if not copy.is_dir():
                raise
    for old in folder.iterdir():
        if old != copy and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    return copy


def _version(objects: list[StoredObject], *, prefix: str) -> str:
    """A digest of what the folder holds: relative keys, sizes and change times."""
    listing = sorted(f"{o.key.removeprefix(prefix)}\t{o.bytes}\t{o.modified.isoformat()}" for o in objects)
    return _digest("\n".join(listing))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]
