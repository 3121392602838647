"""The API on an S3 store (a real moto server): files and artifacts go to the bucket and come back."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from upload_samples import SAMPLE_ROWS, dataset_bytes

from storage.stored_jobs import job_with_artifact


@pytest.fixture
def bucket_store(s3_url: str) -> Any:
    """The S3 store the API writes to, for looking inside the bucket."""
    from app.core.storage.s3 import S3Store

    return S3Store(s3_url)


@pytest.fixture
def s3_client(make_client: Callable[..., Any], settings: Any, s3_url: str) -> Any:
    """A client of the API with its store in this test's bucket."""
    return make_client(api_key=settings.dev_api_key, storage_url=s3_url)


def test_an_upload_goes_to_the_bucket_is_listed_and_deleted(
    s3_client: Any, bucket_store: Any, settings: Any
) -> None:
    content = dataset_bytes(SAMPLE_ROWS, "csv")
    response = s3_client.post("/v1/files", files={"file": ("data.csv", content)})
    assert response.status_code == 201, response.text
    file = response.json()
    key = f"files/{file['id']}/data.csv"
    assert bucket_store.size(key) == len(content) == file["bytes"]
    assert b"".join(bucket_store.iter_bytes(key)) == content
    assert not (settings.artifacts / "files" / file["id"]).exists()
    assert [item["id"] for item in s3_client.get("/v1/files").json()["data"]] == [file["id"]]
    assert s3_client.delete(f"/v1/files/{file['id']}").status_code == 200
    assert bucket_store.files_under(f"files/{file['id']}") == []
    assert s3_client.get(f"/v1/files/{file['id']}").status_code == 404


def test_an_invalid_upload_leaves_nothing_in_the_bucket(s3_client: Any, bucket_store: Any) -> None:
    response = s3_client.post("/v1/files", files={"file": ("data.jsonl", b'{"text": "a"}\nnot json\n')})
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "file"
    assert bucket_store.files_under("files") == []


def test_an_artifact_streams_from_the_bucket_and_goes_with_its_job(
    s3_client: Any, bucket_store: Any, db_session: Any, tiny_model: str
) -> None:
    content = b"\x1f\x8b" + bytes(range(256)) * 400
    job_id = job_with_artifact(s3_client, db_session, bucket_store, tiny_model, content)
    listed = s3_client.get(f"/v1/jobs/{job_id}/artifacts").json()["data"]
    assert [(item["name"], item["bytes"]) for item in listed] == [("student.tar.gz", len(content))]
    response = s3_client.get(f"/v1/jobs/{job_id}/artifacts/student.tar.gz")
    assert response.status_code == 200
    assert response.content == content
    assert response.headers["content-length"] == str(len(content))
    assert s3_client.delete(f"/v1/jobs/{job_id}").status_code == 200
    assert bucket_store.files_under(f"jobs/{job_id}") == []


def test_a_presigned_download_redirects_to_a_url_that_needs_no_key_and_expires(
    make_client: Callable[..., Any],
    settings: Any,
    s3_url: str,
    bucket_store: Any,
    db_session: Any,
    tiny_model: str,
    s3_server: Any,
) -> None:
    client = make_client(
        api_key=settings.dev_api_key,
        storage_url=s3_url,
        storage_presigned_downloads=True,
        storage_presign_seconds=2,
    )
    job_id = job_with_artifact(client, db_session, bucket_store, tiny_model, b"student bytes")
    response = client.get(f"/v1/jobs/{job_id}/artifacts/student.tar.gz", follow_redirects=False)
    assert response.status_code == 307
    location = response.headers["location"]
    assert location.startswith(s3_server.endpoint)
    fetched = httpx.get(location)  # a plain request: no API key, no AWS credentials
    assert fetched.status_code == 200 and fetched.content == b"student bytes"
    assert "student.tar.gz" in fetched.headers["content-disposition"]
    # moto serves a presigned URL past its expiry (it does not check it; S3 does): check what it signs.
    query = parse_qs(urlparse(location).query)
    assert query["X-Amz-Expires"] == ["2"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 60
