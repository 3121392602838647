"""What a job reads before it runs: the models and files its spec names, resolved to local paths."""

from pathlib import Path

from app.api.errors import NotFound
from app.core.config import Settings
from app.core.db import session_scope
from app.core.storage import ArtifactStore, open_store
from app.files.service import get_file
from app.jobs.model_refs import ModelLocation, resolve_model_ref
from distillery.jobspec import ModelRef


def model_dir(*, ref: ModelRef, tenant: str, settings: Settings) -> ModelLocation:
    """The folder of a model the spec names; raises ModelRefError when it is not allowed or not there."""
    with session_scope() as session:
        return resolve_model_ref(ref, session=session, tenant=tenant, settings=settings)


def file_path(*, file_id: str, tenant: str, settings: Settings) -> Path | None:
    """Where the tenant's uploaded file is stored; None when it has no such file."""
    with session_scope() as session:
        try:
            location = get_file(session=session, tenant=tenant, file_id=file_id).location
        except NotFound:
            return None
    return local_copy(open_store(settings), location, settings=settings)


def local_copy(store: ArtifactStore, key: str, *, settings: Settings) -> Path:
    """A stored file as a local path: itself in a local store, else a copy kept in the worker's scratch.

    Uploads never change once stored, so a copy that is there is current.
    """
    path = store.local_path(key)
    if path is not None:
        return path
    copy = settings.scratch / "inputs" / key
    if not copy.is_file():
        store.get_file(key, copy)
    return copy
