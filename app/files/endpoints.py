"""Routes of uploaded datasets."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile

from app.api.deleted import Deleted
from app.api.deps import SessionDep, SettingsDep, StoreDep
from app.api.errors import error_responses
from app.api.pagination import After, Limit, list_page
from app.api.session_route import SessionEndingRoute
from app.auth.deps import TenantDep
from app.files import service
from app.files.schemas import FileList, FilePublic
from distillery.jobspec.text import ResourceId, Text

router = APIRouter(prefix="/files", tags=["files"], route_class=SessionEndingRoute)

FileId = Annotated[ResourceId, Path(description="The file's id, e.g. `file_5c1d0e2f...`.")]
Purpose = Annotated[Text | None, Form(max_length=64, description="Free label, e.g. `train`.")]


async def get_file_users(request: Request) -> service.FileUsers:
    """Who reads a file: the jobs domain's answer, which `app.main` gives the app (jobs sit above files)."""
    users_of: service.FileUsers = request.app.state.file_users
    return users_of


FileUsersDep = Annotated[service.FileUsers, Depends(get_file_users)]


@router.post(
    "",
    status_code=201,
    summary="Upload a dataset",
    responses=error_responses(400, 401, 413, 415, 422, 503),
)
def upload_file(
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    store: StoreDep,
    file: Annotated[
        UploadFile,
        File(description="A .jsonl, .csv or .parquet dataset; without an extension, its content says which."),
    ],
    purpose: Purpose = None,
) -> FilePublic:
    """Upload a JSONL, CSV or Parquet dataset; it is parsed on upload and its columns recorded."""
    stored = service.upload_file(
        session=session,
        store=store,
        tenant=tenant,
        stream=file.file,
        filename=file.filename or "",
        purpose=purpose,
        max_bytes=settings.max_upload_bytes,
    )
    return FilePublic.from_row(stored)


@router.get("", summary="List files", responses=error_responses(401, 422))
def list_files(session: SessionDep, tenant: TenantDep, limit: Limit = 20, after: After = None) -> FileList:
    """List the uploaded files, newest first."""
    files, has_more = service.list_files(session=session, tenant=tenant, limit=limit, after=after)
    return list_page(FileList, [FilePublic.from_row(file) for file in files], has_more=has_more)


@router.get("/{file_id}", summary="Get a file", responses=error_responses(401, 404, 422))
def get_file(file_id: FileId, session: SessionDep, tenant: TenantDep) -> FilePublic:
    """Get one uploaded file's metadata."""
    return FilePublic.from_row(service.get_file(session=session, tenant=tenant, file_id=file_id))


@router.delete("/{file_id}", summary="Delete a file", responses=error_responses(401, 404, 409, 422, 503))
def delete_file(
    file_id: FileId, session: SessionDep, tenant: TenantDep, store: StoreDep, users_of: FileUsersDep
) -> Deleted:
    """Delete a file that no queued or running job uses."""
    folder = service.delete_file(session=session, tenant=tenant, file_id=file_id, users_of=users_of)
    # The files go first: if the store is down the row stays (503), and a retry deletes both.
    store.delete(folder)
    session.commit()
    return Deleted(id=file_id, object="file")
