"""The client's errors: one readable line each, whatever the server answered."""

import socket

import httpx
import pytest
from cli_fake_api import BASE_URL, FakeApi, error_response

from distillery.client import ApiError, DistilleryClient, RequestTimeoutError, ServerUnreachableError


def test_validation_error_reads_as_status_code_param_and_message(api: FakeApi) -> None:
    api.route(
        "POST",
        "/v1/jobs",
        lambda _r, _m: error_response(
            422, "invalid", "Input should be less than or equal to 1", param="method.alpha"
        ),
    )

    with pytest.raises(ApiError) as caught:
        api.client().create_job(
            {"data": {"train_file": "file_1"}, "method": {"type": "response", "alpha": 2}}
        )

    error = caught.value
    assert (error.status, error.code, error.param) == (422, "invalid", "method.alpha")
    assert str(error) == "422 invalid: method.alpha: Input should be less than or equal to 1"


def test_error_without_param_and_with_newlines_is_one_line(api: FakeApi) -> None:
    api.route("GET", "/v1/jobs/job_1", lambda _r, _m: error_response(404, "not_found", "no job\njob_1\n"))

    with pytest.raises(ApiError) as caught:
        api.client().get_job("job_1")

    assert str(caught.value) == "404 not_found: no job job_1"


def test_a_body_that_is_not_the_api_error_shape_still_reads_well(api: FakeApi) -> None:
    api.route(
        "GET", "/v1/files", lambda _r, _m: httpx.Response(502, text="<html>\n<b>Bad gateway</b>\n</html>")
    )
    api.route("GET", "/v1/jobs", lambda _r, _m: httpx.Response(401, json={"detail": "Not authenticated"}))

    with pytest.raises(ApiError) as gateway:
        api.client().list_files()
    with pytest.raises(ApiError) as detail:
        api.client().list_jobs()

    assert str(gateway.value) == "502 bad_gateway: <html> <b>Bad gateway</b> </html>"
    assert str(detail.value) == "401 unauthorized: Not authenticated"


def test_connection_refused_says_the_server_is_not_reachable_at_its_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = DistilleryClient(base_url=url, timeout=5)

    with pytest.raises(ServerUnreachableError) as caught:
        client.list_jobs()

    assert f"not reachable at {url}" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_timeout_names_the_server_and_the_limit() -> None:
    def too_slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client = DistilleryClient(base_url=BASE_URL, timeout=3, transport=httpx.MockTransport(too_slow))

    with pytest.raises(RequestTimeoutError, match=r"did not answer within 3 s"):
        client.get_job("job_1")
