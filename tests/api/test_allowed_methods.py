"""OPTIONS, HEAD and 405 agree with the route table: `Allow` lists every method a path supports."""

from typing import Any

import pytest

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def allow_of(response: Any) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/jobs", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("/v1/jobs/job_123", {"GET", "HEAD", "DELETE", "OPTIONS"}),
        ("/v1/jobs/job_123/cancel", {"POST", "OPTIONS"}),
        ("/v1/files/file_123", {"GET", "HEAD", "DELETE", "OPTIONS"}),
        ("/healthz", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_options_answers_204_with_every_method_of_the_path(
    anonymous_client: Any, path: str, methods: set[str]
) -> None:
    response = anonymous_client.options(path)
    assert response.status_code == 204
    assert allow_of(response) == methods
    assert response.content == b""


def test_the_allow_header_matches_the_openapi_document(anonymous_client: Any) -> None:
    paths = anonymous_client.get("/openapi.json").json()["paths"]
    for path, item in paths.items():
        concrete = path.replace("{job_id}", "job_1").replace("{file_id}", "file_1").replace("{name}", "a")
        declared = {method.upper() for method in item if method in HTTP_METHODS}
        advertised = allow_of(anonymous_client.options(concrete))
        assert advertised - {"HEAD", "OPTIONS"} == declared, path


def test_a_wrong_method_is_405_listing_the_same_methods(client: Any) -> None:
    response = client.put("/v1/jobs/job_123")
    assert response.status_code == 405
    assert allow_of(response) == {"GET", "HEAD", "DELETE", "OPTIONS"}
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_head_answers_like_get_without_a_body(client: Any, create_job: Any) -> None:
    job = create_job()
    got = client.get(f"/v1/jobs/{job['id']}")
    head = client.head(f"/v1/jobs/{job['id']}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]


def test_options_on_an_unknown_path_is_404(anonymous_client: Any) -> None:
    assert anonymous_client.options("/v1/nothing-here").status_code == 404
