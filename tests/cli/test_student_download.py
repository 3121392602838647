"""download_student: extracts the archive safely and returns what from_pretrained loads."""

import io
import tarfile
from pathlib import Path

import httpx
import pytest
from cli_fake_api import FakeApi

from distillery.client import UnsafeArchiveError

ARTIFACT_PATH = "/v1/jobs/job_1/artifacts/student.tar.gz"


def tar_bytes(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A gzipped tar holding the given files (and symlinks), member names used exactly as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def serve_archive(api: FakeApi, archive: bytes) -> None:
    api.route("GET", ARTIFACT_PATH, lambda _r, _m: httpx.Response(200, content=archive))


def test_a_flat_archive_extracts_into_the_destination(api: FakeApi, tmp_path: Path) -> None:
    serve_archive(api, tar_bytes({"config.json": b"{}", "model.safetensors": b"weights"}))

    model_dir = api.client().download_student("job_1", tmp_path / "student")

    assert model_dir == tmp_path / "student"
    assert (model_dir / "config.json").read_bytes() == b"{}"
    assert (model_dir / "model.safetensors").read_bytes() == b"weights"


def test_an_archive_with_one_top_folder_returns_that_folder(api: FakeApi, tmp_path: Path) -> None:
    serve_archive(api, tar_bytes({"student/config.json": b"{}", "student/tokenizer.json": b"{}"}))

    model_dir = api.client().download_student("job_1", tmp_path / "out")

    assert model_dir == tmp_path / "out" / "student"
    assert (model_dir / "config.json").is_file()


@pytest.mark.parametrize(
    "member",
    ["../escape.txt", "student/../../escape.txt", "/tmp/escape.txt"],
)
def test_a_member_outside_the_destination_is_rejected_before_anything_is_written(
    api: FakeApi, tmp_path: Path, member: str
) -> None:
    serve_archive(api, tar_bytes({"config.json": b"{}", member: b"owned"}))
    dest = tmp_path / "a" / "b"

    with pytest.raises(UnsafeArchiveError, match="escape.txt"):
        api.client().download_student("job_1", dest)

    assert not (tmp_path / "a" / "escape.txt").exists()
    assert not (tmp_path / "escape.txt").exists()
    assert list(dest.iterdir()) == []


def test_a_symlink_member_is_rejected(api: FakeApi, tmp_path: Path) -> None:
    serve_archive(api, tar_bytes({"config.json": b"{}"}, links={"model.safetensors": "/etc/passwd"}))

    with pytest.raises(UnsafeArchiveError, match="not a regular file"):
        api.client().download_student("job_1", tmp_path / "student")

    assert not (tmp_path / "student" / "model.safetensors").exists()
