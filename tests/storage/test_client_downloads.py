"""The client and the CLI download from an API on S3, streamed or redirected to the store, keyless."""

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_proxy import FaultProxy
from typer.testing import CliRunner

from distillery.cli.main import app as cli
from distillery.cli.state import CliState
from distillery.client import DistilleryClient
from storage.conftest import LiveS3Api
from storage.stored_jobs import job_with_artifact

pytestmark = pytest.mark.slow


def student_archive() -> bytes:
    """A student as the worker packs it: a gzipped tar with its config."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("config.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    return buffer.getvalue()


STUDENT = student_archive()


@dataclass(frozen=True)
class JobOnS3:
    """A succeeded job with its student in the bucket of an API process that streams or redirects."""

    api: LiveS3Api
    job_id: str
    presigned: bool


@pytest.fixture(params=[False, True], ids=["streamed", "presigned"])
def job_on_s3(
    request: pytest.FixtureRequest,
    live_s3_api: Callable[[bool], LiveS3Api],
    settings: Any,
    db_session: Any,
    tiny_model: str,
    s3_environment: Any,
) -> JobOnS3:
    """Each download mode in turn, with a fresh job."""
    from app.core.storage.s3 import S3Store

    live = live_s3_api(request.param)
    headers = {"Authorization": f"Bearer {settings.dev_api_key}"}
    with httpx.Client(base_url=live.url, headers=headers) as http:
        job_id = job_with_artifact(http, db_session, S3Store(live.storage_url), tiny_model, STUDENT)
    return JobOnS3(live, job_id, request.param)


def assert_went_to_the_store_without_the_key(job: JobOnS3, proxy: FaultProxy, api_key: str) -> None:
    """With presigned downloads the bytes came from the store, which got no API key; else from the API."""
    fetched = [seen for seen in proxy.seen if job.job_id in seen.path]
    assert bool(fetched) == job.presigned
    for seen in fetched:
        assert "authorization" not in {name.lower() for name in seen.headers}
        assert not any(api_key in value for value in seen.headers.values())


def test_the_client_downloads_an_artifact_either_way(
    job_on_s3: JobOnS3, settings: Any, store_downloads_proxy: FaultProxy, tmp_path: Path
) -> None:
    client = DistilleryClient(base_url=job_on_s3.api.url, api_key=settings.dev_api_key)
    path = client.download_artifact(job_on_s3.job_id, "student.tar.gz", tmp_path)
    assert path.read_bytes() == STUDENT
    assert [item.name for item in tmp_path.iterdir()] == ["student.tar.gz"]
    assert_went_to_the_store_without_the_key(job_on_s3, store_downloads_proxy, settings.dev_api_key)


def test_the_cli_downloads_the_student_either_way(
    job_on_s3: JobOnS3, settings: Any, store_downloads_proxy: FaultProxy, tmp_path: Path
) -> None:
    state = CliState(url=job_on_s3.api.url, api_key=settings.dev_api_key)
    arguments = ["download", job_on_s3.job_id, "--out", str(tmp_path / "student")]
    result = CliRunner().invoke(cli, arguments, obj=state)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "student" / "config.json").read_bytes() == b"{}"
    assert_went_to_the_store_without_the_key(job_on_s3, store_downloads_proxy, settings.dev_api_key)


def test_the_cli_downloads_one_artifact_either_way(
    job_on_s3: JobOnS3, settings: Any, store_downloads_proxy: FaultProxy, tmp_path: Path
) -> None:
    state = CliState(url=job_on_s3.api.url, api_key=settings.dev_api_key)
    arguments = ["download", job_on_s3.job_id, "--artifact", "student.tar.gz", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, arguments, obj=state)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "student.tar.gz").read_bytes() == STUDENT
    assert_went_to_the_store_without_the_key(job_on_s3, store_downloads_proxy, settings.dev_api_key)


def test_httpx_following_the_redirect_itself_drops_the_key_at_the_store(
    job_on_s3: JobOnS3, settings: Any, store_downloads_proxy: FaultProxy
) -> None:
    """What a plain httpx user gets: httpx strips Authorization on a redirect to another origin."""
    headers = {"Authorization": f"Bearer {settings.dev_api_key}"}
    path = f"/v1/jobs/{job_on_s3.job_id}/artifacts/student.tar.gz"
    with httpx.Client(base_url=job_on_s3.api.url, headers=headers, follow_redirects=True) as http:
        response = http.get(path)
    assert response.status_code == 200 and response.content == STUDENT
    assert_went_to_the_store_without_the_key(job_on_s3, store_downloads_proxy, settings.dev_api_key)
