"""Every error has one shape; unexpected failures are 500s of type system that leak nothing."""

from typing import Any

from fastapi.testclient import TestClient

from app.api.errors import field_param
from app.main import create_app


def test_an_unexpected_failure_is_a_500_without_details(settings: Any) -> None:
    app = create_app(settings)

    def explode() -> None:
        raise RuntimeError("secret connection string postgres://user:pw@db")

    app.add_api_route("/explode", explode)
    response = TestClient(app, raise_server_exceptions=False).get("/explode")
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "an unexpected error occurred; it was logged",
            "param": None,
            "type": "system",
        }
    }
    assert "secret" not in response.text


def test_an_unknown_route_is_404_in_the_error_shape(client: Any) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_wrong_method_is_405_in_the_error_shape(client: Any) -> None:
    response = client.put("/v1/jobs")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_union_tags_are_removed_from_the_field_path() -> None:
    body = {"method": {"type": "response", "alpha": 3}, "student": {"layers": [0, -1]}}
    alpha = {"type": "less_than_equal", "loc": ("body", "method", "response", "alpha")}
    assert field_param(alpha, body) == "method.alpha"
    layer = {"type": "greater_than_equal", "loc": ("body", "student", "layers", 1)}
    assert field_param(layer, body) == "student.layers.1"
    missing = {"type": "missing", "loc": ("body", "data", "train_file")}
    assert field_param(missing, {"data": {"text_column": "train_file"}}) == "data.train_file"


def test_a_validator_error_names_its_field_after_the_location() -> None:
    error = {"type": "param:student.model", "loc": ("body",)}
    assert field_param(error, {}) == "student.model"
    nested = {"type": "param:path", "loc": ("body", "teacher")}
    assert field_param(nested, {"teacher": {}}) == "teacher.path"
    named_like_a_value = {"type": "param:config", "loc": ("body", "student")}
    assert field_param(named_like_a_value, {"student": {"init": "config"}}) == "student.config"
