"""The client's sweep calls: bodies, cursors, waiting, retries and errors."""

import httpx
import pytest
from cli_fake_api import FakeApi, error_response, json_body, make_job, make_sweep, page

from distillery.client import ApiError, SweepWaitTimeoutError


def test_create_sweep_posts_the_spec_with_name_metadata_and_idempotency_key(api: FakeApi) -> None:
    api.route("POST", "/v1/sweeps", lambda _r, _m: httpx.Response(201, json=make_sweep("swp_1")))
    spec = {"base": {"data": {"train_file": "file_1"}}, "search": "preset:response-classifier"}

    sweep = api.client().create_sweep(spec, name="tweets", metadata={"team": "a"}, idempotency_key="k-1")

    assert sweep["id"] == "swp_1"
    assert json_body(api.requests[0]) == {**spec, "name": "tweets", "metadata": {"team": "a"}}
    assert api.requests[0].headers["Idempotency-Key"] == "k-1"


def test_a_rejected_sweep_spec_raises_the_api_error_naming_the_field(api: FakeApi) -> None:
    api.route(
        "POST",
        "/v1/sweeps",
        lambda _r, _m: error_response(422, "invalid_spec", "must be below 1", param="search.method.alpha"),
    )

    with pytest.raises(ApiError) as raised:
        api.client().create_sweep({"search": {"method.alpha": {"low": 0.1, "high": 2}}})

    assert (raised.value.status, raised.value.param) == (422, "search.method.alpha")


def test_iter_sweeps_follows_the_cursor(api: FakeApi) -> None:
    pages = [page([make_sweep("swp_2"), make_sweep("swp_1")], has_more=True), page([make_sweep("swp_0")])]
    api.route("GET", "/v1/sweeps", lambda _r, _m: httpx.Response(200, json=pages.pop(0)))

    ids = [sweep["id"] for sweep in api.client().iter_sweeps(page_size=2)]

    assert ids == ["swp_2", "swp_1", "swp_0"]
    assert [dict(request.url.params) for request in api.requests] == [
        {"limit": "2"},
        {"limit": "2", "after": "swp_1"},
    ]


def test_list_jobs_of_a_sweep_passes_its_id(api: FakeApi) -> None:
    api.route("GET", "/v1/jobs", page([make_job("job_t0", sweep_id="swp_1")]))

    jobs = list(api.client().iter_jobs(sweep_id="swp_1"))

    assert [job["id"] for job in jobs] == ["job_t0"]
    assert dict(api.requests[0].url.params) == {"limit": "100", "sweep_id": "swp_1"}


def test_wait_for_sweep_polls_until_it_ends(api: FakeApi) -> None:
    answers = [
        make_sweep("swp_1", "running"),
        make_sweep("swp_1", "cancelling"),
        make_sweep("swp_1", "cancelled"),
    ]
    api.route("GET", "/v1/sweeps/swp_1", lambda _r, _m: httpx.Response(200, json=answers.pop(0)))

    assert api.client().wait_for_sweep("swp_1", poll=0)["status"] == "cancelled"
    assert len(api.requests) == 3


def test_wait_for_sweep_gives_up_after_its_timeout(api: FakeApi) -> None:
    api.route("GET", "/v1/sweeps/swp_1", make_sweep("swp_1", "running"))

    with pytest.raises(SweepWaitTimeoutError, match="sweep swp_1 is still running after 0 s"):
        api.client().wait_for_sweep("swp_1", poll=0, timeout=0)


def test_cancel_is_retried_through_a_503_and_delete_answers_none(api: FakeApi) -> None:
    answers = [
        httpx.Response(
            503, headers={"Retry-After": "1"}, json={"error": {"code": "unavailable", "message": "x"}}
        ),
        httpx.Response(200, json=make_sweep("swp_1", "cancelling")),
    ]
    api.route("POST", "/v1/sweeps/swp_1/cancel", lambda _r, _m: answers.pop(0))
    api.route("DELETE", "/v1/sweeps/swp_1", lambda _r, _m: httpx.Response(204))
    client = api.client()

    assert client.cancel_sweep("swp_1")["status"] == "cancelling"
    assert client.delete_sweep("swp_1") is None
    assert [request.method for request in api.requests] == ["POST", "POST", "DELETE"]
