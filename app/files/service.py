"""Uploaded datasets: store, check, list and delete; functions flush and never commit."""

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.errors import ApiError, Conflict, NotFound
from app.api.pagination import page_newest_first
from app.core.base import new_id
from app.core.storage import ArtifactStore, LocalStore
from app.files.models import File
from app.files.sniffing import SNIFF_BYTES, sniff_format
from app.files.validation import (
    FORMAT_BY_EXTENSION,
    DatasetFormat,
    InvalidDataset,
    UnsupportedFormat,
    format_of,
    inspect_dataset,
)

MAX_FILENAME_CHARS = 200
UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class FileUsers(Protocol):
    """Ids of the tenant's unfinished jobs that read a file: the jobs domain answers, above this one."""

    def __call__(self, *, session: Session, tenant: str, file_id: str) -> list[str]: ...


def sanitize_filename(filename: str) -> str:
    """A name safe as one path segment on any OS: no directories, no leading dots, plain characters."""
    name = PurePosixPath(filename.replace("\\", "/")).name
    name = UNSAFE_FILENAME_CHARS.sub("_", name).lstrip(".")
    if len(name) > MAX_FILENAME_CHARS:
        suffix = PurePosixPath(name).suffix[:20]
        name = name[: MAX_FILENAME_CHARS - len(suffix)] + suffix
    return name


def folder_of(file_id: str) -> str:
    """The store key of a file's folder."""
    return f"files/{file_id}"


def format_and_name(filename: str, stream: BinaryIO) -> tuple[DatasetFormat, str]:
    """The upload's format and the name it is stored under: its extension's, or, for a name without one,
    the format its first bytes show, with that format's extension added (jobs read files by extension)."""
    if PurePosixPath(filename).suffix:
        try:
            return format_of(filename), filename
        except UnsupportedFormat as error:
            raise ApiError(415, str(error), code="unsupported_file_type", param="file") from error
    head = stream.read(SNIFF_BYTES)
    stream.seek(0)
    fmt = sniff_format(head)
    if fmt is None:
        accepted = ", ".join(sorted(FORMAT_BY_EXTENSION))
        raise ApiError(
            415,
            f"'{filename}' has no extension and its content is not JSON Lines, CSV or Parquet; "
            f"upload a dataset named with one of {accepted}",
            code="unsupported_file_type",
            param="file",
        )
    return fmt, f"{filename or 'upload'}.{fmt}"


def upload_file(
    *,
    session: Session,
    store: ArtifactStore,
    tenant: str,
    stream: BinaryIO,
    filename: str,
    purpose: str | None,
    max_bytes: int,
) -> File:
    """Store an upload under `files/<id>/<filename>`, check it parses, and record it.

    With an object store, the upload is checked in a local staging copy, then sent in parts.
    """
    fmt, safe_name = format_and_name(sanitize_filename(filename), stream)
    file_id = new_id("file")
    key = f"{folder_of(file_id)}/{safe_name}"
    with tempfile.TemporaryDirectory(prefix="distillery-upload-") as folder:
        staging = store if store.local_path(key) is not None else LocalStore(Path(folder))
        size, sha256 = _receive(staging, key, stream, max_bytes=max_bytes, folder=folder_of(file_id))
        path = staging.local_path(key)
        assert path is not None
        received = Received(key=key, path=path, bytes=size, sha256=sha256)
        file = _record(session, store=store, received=received, tenant=tenant, fmt=fmt, purpose=purpose)
        if staging is not store:
            _publish(store=store, key=key, path=path)
    return file


@dataclass(frozen=True)
class Received:
    """An upload written to a local file: its key, path, size and hash."""

    key: str
    path: Path
    bytes: int
    sha256: str


def _receive(
    store: ArtifactStore, key: str, stream: BinaryIO, *, max_bytes: int, folder: str
) -> tuple[int, str]:
    """Write the upload; 413 past the limit, with nothing left behind."""
    try:
        return store.put_stream(key, stream, max_bytes=max_bytes)
    except OverflowError as error:
        store.delete(folder)
        raise ApiError(
            413,
            f"the file is larger than the limit of {max_bytes} bytes",
            code="file_too_large",
            param="file",
        ) from error


def _publish(*, store: ArtifactStore, key: str, path: Path) -> None:
    """Send a checked upload to the object store; the caller's session is not committed if this fails."""
    try:
        store.put_file(key, path)
    except BaseException:
        store.delete(key)
        raise


def _record(
    session: Session,
    *,
    store: ArtifactStore,
    received: "Received",
    tenant: str,
    fmt: DatasetFormat,
    purpose: str | None,
) -> File:
    """Check the stored upload parses and add its row; the upload is removed if not."""
    _, file_id, safe_name = received.key.split("/")
    try:
        summary = inspect_dataset(received.path, fmt)
        file = File(
            id=file_id,
            tenant=tenant,
            filename=safe_name,
            format=fmt,
            bytes=received.bytes,
            sha256=received.sha256,
            rows=summary.rows,
            columns=summary.columns,
            location=received.key,
            metadata_={"purpose": purpose, "encoding": summary.encoding},
        )
        session.add(file)
        session.flush()
    except InvalidDataset as error:
        store.delete(folder_of(file_id))
        received.path.unlink(missing_ok=True)
        raise ApiError(
            422, f"not a valid {fmt} dataset: {error}", code="invalid_file", param="file"
        ) from error
    except BaseException:
        store.delete(folder_of(file_id))
        raise
    return file


def get_file(*, session: Session, tenant: str, file_id: str, for_update: bool = False) -> File:
    """A file of the tenant; 404 for a missing file and for another tenant's."""
    statement = select(File).where(File.id == file_id, File.tenant == tenant)
    if for_update:
        statement = statement.with_for_update()
    file = session.scalar(statement)
    if file is None:
        raise NotFound("file", file_id)
    return file


def file_for_job(*, session: Session, tenant: str, file_id: str) -> File | None:
    """A file of the tenant that a new job reads, or None; share-locked, so that a concurrent deletion
    waits for the job to commit, and then sees it."""
    return session.scalar(
        select(File).where(File.id == file_id, File.tenant == tenant).with_for_update(read=True)
    )


def list_files(*, session: Session, tenant: str, limit: int, after: str | None) -> tuple[list[File], bool]:
    """A page of the tenant's files, newest first, and whether more follow."""
    statement = select(File).where(File.tenant == tenant)
    return page_newest_first(session, statement, entity=File, tenant=tenant, limit=limit, after=after)


def delete_file(*, session: Session, tenant: str, file_id: str, users_of: FileUsers) -> str:
    """Delete a file's row unless an unfinished job reads it; returns its store folder, to remove later."""
    file = get_file(session=session, tenant=tenant, file_id=file_id, for_update=True)
    users = users_of(session=session, tenant=tenant, file_id=file_id)
    if users:
        raise Conflict(
            f"file '{file_id}' is used by unfinished job(s) {', '.join(users)}; cancel them first",
            code="file_in_use",
        )
    session.delete(file)
    session.flush()
    return folder_of(file_id)
