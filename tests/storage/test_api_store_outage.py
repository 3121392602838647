"""A store that answers 503 (a real proxy in front of moto): brief faults are retried, outages answer 503."""

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from local_ports import free_port
from upload_samples import SAMPLE_ROWS, dataset_bytes

from storage.stored_jobs import job_with_artifact


@pytest.fixture
def flaky_url(s3_url: str, fault_proxy: FaultProxy, s3_environment: Callable[[str], None]) -> str:
    """This test's bucket, reached through the fault proxy by every store opened from now on."""
    s3_environment(fault_proxy.endpoint)
    return s3_url


def flaky_store(url: str, attempts: int) -> Any:
    from app.core.storage.s3 import S3Store

    return S3Store(url, retry_attempts=attempts)


def test_writes_and_reads_through_a_few_503s_are_retried_and_succeed(
    flaky_url: str, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    store = flaky_store(flaky_url, attempts=4)
    content = os.urandom(9 * 1024 * 1024)  # two parts: a multipart upload
    fault_proxy.fail_next(2)
    assert store.put_stream("jobs/j1/model.bin", io.BytesIO(content))[0] == len(content)
    fault_proxy.fail_next(2)
    assert store.put_if_absent("jobs/j1/manifest.json", b"{}")
    fault_proxy.fail_next(2)
    store.get_file("jobs/j1/model.bin", tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes() == content
    assert fault_proxy.failed == 6


def test_an_outage_longer_than_the_retries_is_store_unavailable_and_leaves_no_partial_file(
    flaky_url: str, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    from app.core.storage import StoreUnavailable

    store = flaky_store(flaky_url, attempts=2)
    store.put_if_absent("jobs/j1/model.bin", b"weights")
    fault_proxy.failing = True
    with pytest.raises(StoreUnavailable):
        store.put_stream("jobs/j1/other.bin", io.BytesIO(b"x"))
    with pytest.raises(StoreUnavailable):
        store.get_file("jobs/j1/model.bin", tmp_path / "out" / "model.bin")
    assert list((tmp_path / "out").iterdir()) == []
    fault_proxy.failing = False
    assert store.size("jobs/j1/other.bin") is None


def test_the_api_retries_a_brief_fault_and_answers_503_store_unavailable_during_an_outage(
    make_client: Callable[..., Any], settings: Any, flaky_url: str, fault_proxy: FaultProxy
) -> None:
    client = make_client(api_key=settings.dev_api_key, storage_url=flaky_url, storage_retry_attempts=3)
    upload = {"file": ("data.jsonl", dataset_bytes(SAMPLE_ROWS, "jsonl"))}
    fault_proxy.fail_next(2)
    file_id = client.post("/v1/files", files=upload).json()["id"]
    fault_proxy.failing = True
    for response in (client.post("/v1/files", files=upload), client.delete(f"/v1/files/{file_id}")):
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "store_unavailable"
        assert response.json()["error"]["type"] == "system"
        assert int(response.headers["retry-after"]) > 0
    assert [item["id"] for item in client.get("/v1/files").json()["data"]] == [file_id]
    fault_proxy.failing = False
    assert client.delete(f"/v1/files/{file_id}").status_code == 200


def test_an_artifact_download_and_a_job_deletion_during_an_outage_are_503_and_work_after_it(
    make_client: Callable[..., Any],
    settings: Any,
    flaky_url: str,
    fault_proxy: FaultProxy,
    db_session: Any,
    tiny_model: str,
) -> None:
    client = make_client(api_key=settings.dev_api_key, storage_url=flaky_url, storage_retry_attempts=2)
    job_id = job_with_artifact(client, db_session, flaky_store(flaky_url, 2), tiny_model, b"student")
    fault_proxy.failing = True
    path = f"/v1/jobs/{job_id}"
    for response in (client.get(f"{path}/artifacts/student.tar.gz"), client.delete(path)):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "store_unavailable"
    fault_proxy.failing = False
    assert client.get(f"{path}/artifacts/student.tar.gz").content == b"student"
    assert client.delete(path).status_code == 200
    assert client.get(path).status_code == 404


def test_a_store_whose_port_is_closed_answers_503_too(
    make_client: Callable[..., Any], settings: Any, s3_url: str, s3_environment: Callable[[str], None]
) -> None:
    s3_environment(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    client = make_client(api_key=settings.dev_api_key, storage_url=s3_url, storage_retry_attempts=2)
    response = client.post("/v1/files", files={"file": ("data.jsonl", dataset_bytes(SAMPLE_ROWS, "jsonl"))})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "store_unavailable"
    assert client.get("/v1/files").json()["data"] == []
