"""HTTP shapes of uploaded files."""

from typing import Literal

from pydantic import BaseModel, Field

from app.api.pagination import ListObject
from app.api.timestamps import unix_seconds
from app.files.models import File
from app.files.validation import DatasetFormat


class FilePublic(BaseModel):
    """An uploaded dataset, as checked on upload."""

    id: str = Field(..., examples=["file_5c1d0e2f3a4b5c6d7e8f9a0b"])
    object: Literal["file"] = "file"
    filename: str = Field(..., examples=["reviews.jsonl"])
    format: DatasetFormat
    bytes: int = Field(..., description="Size in bytes.")
    sha256: str
    rows: int = Field(..., description="Data rows (the CSV header excluded).")
    columns: list[str] = Field(..., examples=[["text", "label"]])
    purpose: str | None = Field(None, description="Free label given on upload, e.g. `train`.")
    created_at: int = Field(..., description="Unix seconds.")

    @classmethod
    def from_row(cls, file: File) -> "FilePublic":
        """The public view of a stored file."""
        return cls(
            id=file.id,
            filename=file.filename,
            format=file.format,  # type: ignore[arg-type]  # written only from DatasetFormat
            bytes=file.bytes,
            sha256=file.sha256,
            rows=file.rows,
            columns=list(file.columns),
            purpose=(file.metadata_ or {}).get("purpose"),
            created_at=unix_seconds(file.created_at),
        )


class FileList(ListObject[FilePublic, str]):
    """A page of files, newest first."""
