"""The OpenAPI document is a usable front door, and the API stays free of torch."""

import subprocess
import sys
from typing import Any

from app.api.errors import ErrorDetail
from app.jobs.schemas import BUILT_IN_EXAMPLE, EXAMPLE_DESCRIPTION, JobCreate, load_job_examples

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


TAGS = {"files", "jobs", "sweeps", "webhooks", "workers", "health", "metrics"}


def test_every_route_has_a_summary_a_description_a_tag_and_declared_errors(anonymous_client: Any) -> None:
    openapi = anonymous_client.get("/openapi.json").json()
    assert openapi["info"]["title"] == "Distillery" and openapi["info"]["description"]
    for path, method, operation in operations(openapi):
        where = f"{method.upper()} {path}"
        assert operation.get("summary"), where
        assert operation.get("description"), where
        assert set(operation["tags"]) <= TAGS, where
        errors = [code for code in operation["responses"] if code.startswith(("4", "5"))]
        if path != "/healthz":
            assert errors, where
        for code in errors:
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, where


def test_path_parameters_are_described(anonymous_client: Any) -> None:
    openapi = anonymous_client.get("/openapi.json").json()
    for path, method, operation in operations(openapi):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                assert parameter.get("description"), f"{method.upper()} {path} {parameter['name']}"


def test_job_creation_documents_examples_that_validate(anonymous_client: Any) -> None:
    openapi = anonymous_client.get("/openapi.json").json()
    content = openapi["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    examples = content["examples"]
    assert examples == load_job_examples()
    for example in examples.values():
        JobCreate.model_validate(example["value"])


def test_examples_come_from_yaml_files_named_by_stem(tmp_path: Any) -> None:
    (tmp_path / "feature_kd.yaml").write_text("data: {train_file: file_x}\nmethod: {type: feature}\n")
    (tmp_path / "broken.yaml").write_text("data: [unclosed\n")
    assert load_job_examples(tmp_path) == {
        "feature_kd": {
            "summary": "feature kd",
            "description": EXAMPLE_DESCRIPTION,
            "value": {"data": {"train_file": "file_x"}, "method": {"type": "feature"}},
        }
    }
    assert load_job_examples(tmp_path / "missing")["response"]["value"] == BUILT_IN_EXAMPLE


def test_the_error_shape_is_one_model(anonymous_client: Any) -> None:
    schemas = anonymous_client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["ErrorResponse"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert set(schemas["ErrorDetail"]["properties"]) == set(ErrorDetail.model_fields)


def test_the_api_never_imports_torch() -> None:
    code = (
        "import sys, app.main, app.jobs.queue, app.jobs.model_refs;"
        "heavy = sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules);"
        "print(', '.join(heavy)); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_error_status_shows_its_own_body_and_a_new_job_shows_no_error(anonymous_client: Any) -> None:
    openapi = anonymous_client.get("/openapi.json").json()
    responses = openapi["paths"]["/v1/jobs"]["post"]["responses"]
    errors = {
        status: response["content"]["application/json"]["example"]["error"]
        for status, response in responses.items()
        if status.startswith(("4", "5"))
    }
    job = openapi["components"]["schemas"]["JobPublic"]["properties"]

    assert len({error["code"] for error in errors.values()}) == len(errors) > 2
    assert errors["422"]["param"] == errors["422"]["errors"][0]["param"]
    assert job["error"]["examples"] == [None]
    requests = openapi["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert next(iter(requests)) == "response"
