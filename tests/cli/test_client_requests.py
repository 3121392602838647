"""The client's requests: auth, bodies, cursors, polling, uploads and downloads."""

from pathlib import Path

import httpx
import pytest
from cli_fake_api import API_KEY, BASE_URL, FakeApi, error_response, json_body, make_job, page

from distillery.client import DistilleryClient, JobWaitTimeoutError
from distillery.jobspec import DataSpec, JobSpec, ModelRef


def test_every_request_carries_the_bearer_key(api: FakeApi) -> None:
    api.route("GET", "/v1/jobs/job_1", make_job("job_1"))

    api.client().get_job("job_1")

    assert api.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    assert str(api.requests[0].url) == f"{BASE_URL}/v1/jobs/job_1"


def test_url_and_key_default_to_the_environment(monkeypatch: pytest.MonkeyPatch, api: FakeApi) -> None:
    monkeypatch.setenv("DISTILLERY_URL", "http://from-env.test:9000/")
    monkeypatch.setenv("DISTILLERY_API_KEY", "dk-env")
    api.route("GET", "/v1/files", page([]))

    client = DistilleryClient(transport=httpx.MockTransport(api))
    client.list_files()

    assert client.base_url == "http://from-env.test:9000"
    assert str(api.requests[0].url) == "http://from-env.test:9000/v1/files"
    assert api.requests[0].headers["Authorization"] == "Bearer dk-env"


def test_without_a_key_no_authorization_header_is_sent(monkeypatch: pytest.MonkeyPatch, api: FakeApi) -> None:
    monkeypatch.delenv("DISTILLERY_API_KEY", raising=False)
    api.route("GET", "/v1/files", page([]))

    DistilleryClient(base_url=BASE_URL, transport=httpx.MockTransport(api)).list_files()

    assert "Authorization" not in api.requests[0].headers


def test_create_job_posts_the_spec_with_name_and_idempotency_key(api: FakeApi) -> None:
    api.route("POST", "/v1/jobs", lambda _r, _m: httpx.Response(201, json=make_job("job_1")))
    spec = {"data": {"train_file": "file_1"}, "method": {"type": "supervised"}}

    job = api.client().create_job(spec, name="tiny", idempotency_key="key-1")

    request = api.requests[0]
    assert job["id"] == "job_1"
    assert json_body(request) == {**spec, "name": "tiny"}
    assert request.headers["Idempotency-Key"] == "key-1"
    assert spec == {"data": {"train_file": "file_1"}, "method": {"type": "supervised"}}


def test_create_job_accepts_a_job_spec_model(api: FakeApi) -> None:
    api.route("POST", "/v1/jobs", lambda _r, _m: httpx.Response(201, json=make_job("job_1")))

    spec = JobSpec(teacher=ModelRef(path="teacher"), data=DataSpec(train_file="file_1"))

    api.client().create_job(spec)

    assert json_body(api.requests[0]) == {"teacher": {"path": "teacher"}, "data": {"train_file": "file_1"}}
    assert "Idempotency-Key" not in api.requests[0].headers


def test_iter_jobs_follows_the_cursor_until_has_more_is_false(api: FakeApi) -> None:
    jobs = [make_job(f"job_{n}") for n in range(5)]

    def list_jobs(request: httpx.Request, _match: object) -> httpx.Response:
        after = request.url.params.get("after")
        limit = int(request.url.params["limit"])
        start = 0 if after is None else [job["id"] for job in jobs].index(after) + 1
        chunk = jobs[start : start + limit]
        return httpx.Response(200, json=page(chunk, has_more=start + limit < len(jobs)))

    api.route("GET", "/v1/jobs", list_jobs)

    seen = [job["id"] for job in api.client().iter_jobs(status="queued", page_size=2)]

    assert seen == [job["id"] for job in jobs]
    cursors = [request.url.params.get("after") for request in api.requests]
    assert cursors == [None, "job_1", "job_3"]
    assert all(request.url.params["status"] == "queued" for request in api.requests)


def test_iter_events_with_follow_yields_new_events_until_the_job_is_finished(api: FakeApi) -> None:
    statuses = iter(["running", "running", "succeeded"])
    batches = iter([[1, 2], [3], [4]])

    api.route(
        "GET", "/v1/jobs/job_1", lambda _r, _m: httpx.Response(200, json=make_job("job_1", next(statuses)))
    )

    def list_events(request: httpx.Request, _match: object) -> httpx.Response:
        events = [
            {"id": seq, "object": "event", "type": "message", "message": f"e{seq}"} for seq in next(batches)
        ]
        return httpx.Response(200, json=page(events))

    api.route("GET", "/v1/jobs/job_1/events", list_events)

    seen = [event["id"] for event in api.client().iter_events("job_1", follow=True, poll=0)]

    assert seen == [1, 2, 3, 4]
    event_cursors = [r.url.params.get("after") for r in api.requests if r.url.path.endswith("/events")]
    assert event_cursors == [None, "2", "3"]


def test_iter_events_without_follow_reads_once_and_never_polls_the_job(api: FakeApi) -> None:
    api.route("GET", "/v1/jobs/job_1/events", page([{"id": 7, "type": "status", "message": "queued"}]))

    seen = list(api.client().iter_events("job_1", after=6))

    assert [event["id"] for event in seen] == [7]
    assert [r.url.path for r in api.requests] == ["/v1/jobs/job_1/events"]
    assert api.requests[0].url.params["after"] == "6"


def test_wait_returns_the_finished_job(api: FakeApi) -> None:
    statuses = iter(["queued", "running", "failed"])
    api.route(
        "GET", "/v1/jobs/job_1", lambda _r, _m: httpx.Response(200, json=make_job("job_1", next(statuses)))
    )

    job = api.client().wait("job_1", poll=0)

    assert job["status"] == "failed"
    assert len(api.requests) == 3


def test_wait_gives_up_after_its_timeout(api: FakeApi) -> None:
    api.route("GET", "/v1/jobs/job_1", make_job("job_1", "running"))

    with pytest.raises(JobWaitTimeoutError, match="job job_1 is still running"):
        api.client().wait("job_1", poll=0, timeout=0)


def test_upload_sends_the_file_as_the_multipart_field_file(api: FakeApi, tmp_path: Path) -> None:
    dataset = tmp_path / "train.jsonl"
    dataset.write_text('{"text": "hi", "label": 1}\n')
    api.route("POST", "/v1/files", {"id": "file_1", "object": "file", "filename": "train.jsonl", "rows": 1})

    uploaded = api.client().upload_file(dataset)

    request = api.requests[0]
    assert uploaded["id"] == "file_1"
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="file"; filename="train.jsonl"' in request.content
    assert b'{"text": "hi", "label": 1}' in request.content


def test_ids_and_names_are_quoted_as_one_path_segment(api: FakeApi, tmp_path: Path) -> None:
    api.route("GET", r"/v1/jobs/job_1/artifacts/.+", lambda _r, _m: httpx.Response(200, content=b"x"))

    api.client().download_artifact("job_1", "../secret", tmp_path)

    assert api.requests[0].url.raw_path == b"/v1/jobs/job_1/artifacts/..%2Fsecret"
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_download_artifact_streams_to_the_destination(api: FakeApi, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 8192  # 2 MiB, more than one chunk
    api.route(
        "GET", "/v1/jobs/job_1/artifacts/report.json", lambda _r, _m: httpx.Response(200, content=payload)
    )

    into_dir = api.client().download_artifact("job_1", "report.json", tmp_path)
    to_file = api.client().download_artifact("job_1", "report.json", tmp_path / "sub" / "copy.json")

    assert into_dir == tmp_path / "report.json"
    assert into_dir.read_bytes() == payload
    assert to_file.read_bytes() == payload


def test_a_failed_download_raises_and_leaves_no_file(api: FakeApi, tmp_path: Path) -> None:
    api.route(
        "GET",
        "/v1/jobs/job_1/artifacts/report.json",
        lambda _r, _m: error_response(404, "not_found", "no report"),
    )

    with pytest.raises(Exception, match="404 not_found: no report"):
        api.client().download_artifact("job_1", "report.json", tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_delete_job_accepts_an_empty_answer(api: FakeApi) -> None:
    api.route("DELETE", "/v1/jobs/job_1", lambda _r, _m: httpx.Response(204))

    assert api.client().delete_job("job_1") is None
