"""data.packing: taken on causal-LM jobs whose loss it keeps per example, a 422 on the field elsewhere."""

from typing import Any

import pytest

RESPONSE = {"type": "response"}


def packed(spec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The valid request with packing on and the given top-level changes."""
    return {**spec, "data": {**spec["data"], "packing": True}, **changes}


@pytest.mark.parametrize(
    "changes",
    [
        {},  # classification
        {"task": "causal_lm", "method": {"type": "feature"}},
        {"task": "causal_lm", "method": {**RESPONSE, "cross_tokenizer": "uld"}},
    ],
    ids=["classification", "feature", "cross-tokenizer"],
)
def test_packing_where_it_cannot_apply_is_422_on_data_packing(
    client: Any, job_spec: dict[str, Any], changes: dict[str, Any]
) -> None:
    response = client.post("/v1/jobs", json=packed(job_spec, **changes))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == ("data.packing", "user"), error
    assert "pack" in error["message"]


def test_a_causal_lm_job_with_packing_is_queued_with_it(client: Any, job_spec: dict[str, Any]) -> None:
    body = packed(job_spec, task="causal_lm", method={**RESPONSE, "top_k": 8})
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["data"]["packing"] is True


def test_the_openapi_page_describes_data_packing(client: Any) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["DataSpec"]["properties"]["packing"]
    assert schema["default"] is False and "end to end" in schema["description"]
