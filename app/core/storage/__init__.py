"""The artifact store: a local folder by default, or an S3-compatible object store (`storage_url`)."""

from functools import lru_cache

from app.core.config import Settings
from app.core.storage.base import (
    CHUNK,
    ArtifactStore,
    StoredObject,
    StoreUnavailable,
    checked_key,
    size_and_sha256,
    under,
)
from app.core.storage.local import LocalStore

__all__ = [
    "CHUNK",
    "ArtifactStore",
    "LocalStore",
    "StoreUnavailable",
    "StoredObject",
    "checked_key",
    "open_store",
    "size_and_sha256",
    "store_at",
    "under",
]


def open_store(settings: Settings) -> ArtifactStore:
    """The store the settings name; one client per URL and process."""
    if settings.storage_url:
        return _remote(
            settings.storage_url, settings.storage_public_endpoint_url, settings.storage_retry_attempts
        )
    return LocalStore(settings.artifacts)


def store_at(url: str, settings: Settings) -> ArtifactStore:
    """A store at another URL (an s3:// model root, say), with the settings' client options."""
    return _remote(url, settings.storage_public_endpoint_url, settings.storage_retry_attempts)


@lru_cache(maxsize=32)
def _remote(url: str, public_endpoint_url: str | None, retry_attempts: int) -> ArtifactStore:
    try:
        from app.core.storage.s3 import S3Store  # boto3 is needed only with an object store
    except ImportError as error:
        raise RuntimeError(
            "DISTILLERY_STORAGE_URL names an object store: pip install 'distillery[s3]'"
        ) from error

    return S3Store(url, public_endpoint_url=public_endpoint_url, retry_attempts=retry_attempts)
