"""A cursor that names no item is a 422 on `after` on every cursor-paged list, and the document says so."""

from typing import Any

PUBLIC_URL = "https://93.184.215.14/hooks/distillery"


def cursor_paged_lists(client: Any) -> list[str]:
    """The list routes that take an `after` id, with a real webhook for the deliveries route."""
    webhook = client.post("/v1/webhooks", json={"url": PUBLIC_URL})
    assert webhook.status_code == 201, webhook.text
    return ["/v1/jobs", "/v1/files", "/v1/webhooks", f"/v1/webhooks/{webhook.json()['id']}/deliveries"]


def test_an_unknown_cursor_is_a_422_on_after_on_every_list(client: Any) -> None:
    for path in cursor_paged_lists(client):
        for after in ("0", "job_unknown", "wh_" + "f" * 24):
            response = client.get(path, params={"after": after})

            assert response.status_code == 422, (path, after, response.text)
            error = response.json()["error"]
            assert (error["code"], error["param"], error["type"]) == ("invalid_cursor", "after", "user")
            assert f"'{after}'" in error["message"] and "last_id" in error["message"]


def test_every_route_taking_after_declares_the_422_and_no_400(anonymous_client: Any) -> None:
    openapi = anonymous_client.get("/openapi.json").json()
    cursor_routes = [
        (path, operation["responses"])
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
        if any(parameter["name"] == "after" for parameter in operation.get("parameters", []))
    ]

    assert {path for path, _ in cursor_routes} >= {"/v1/jobs", "/v1/files", "/v1/webhooks"}
    for path, responses in cursor_routes:
        assert "422" in responses and "400" not in responses, path
