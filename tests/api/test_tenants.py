"""Tenant isolation: another tenant's jobs, files and artifacts are invisible (404) and never listed."""

from typing import Any

import pytest

from api.arrange import stored_artifact


@pytest.fixture
def my_job(create_job: Any, db_session: Any, settings: Any) -> dict[str, Any]:
    """A job of the default tenant with an artifact."""
    job = create_job()
    stored_artifact(settings, db_session, job["id"], "student.tar.gz", b"weights")
    db_session.commit()
    return job


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("post", "/cancel"),
        ("delete", ""),
        ("get", "/events"),
        ("get", "/checkpoints"),
        ("get", "/artifacts"),
        ("get", "/artifacts/student.tar.gz"),
    ],
)
def test_another_tenants_job_is_404_everywhere(
    other_tenant_client: Any, client: Any, my_job: dict[str, Any], method: str, suffix: str
) -> None:
    response = other_tenant_client.request(method.upper(), f"/v1/jobs/{my_job['id']}{suffix}")
    assert response.status_code == 404
    assert client.get(f"/v1/jobs/{my_job['id']}").json()["status"] == "queued"


def test_another_tenants_file_is_404_and_survives_their_delete(
    other_tenant_client: Any, client: Any, upload_file: Any
) -> None:
    file = upload_file(client)
    assert other_tenant_client.get(f"/v1/files/{file['id']}").status_code == 404
    assert other_tenant_client.delete(f"/v1/files/{file['id']}").status_code == 404
    assert client.get(f"/v1/files/{file['id']}").status_code == 200


def test_lists_show_only_the_callers_own(
    other_tenant_client: Any, client: Any, my_job: dict[str, Any], upload_file: Any
) -> None:
    theirs = upload_file(other_tenant_client)
    assert other_tenant_client.get("/v1/jobs").json()["data"] == []
    assert [file["id"] for file in other_tenant_client.get("/v1/files").json()["data"]] == [theirs["id"]]
    assert theirs["id"] not in [file["id"] for file in client.get("/v1/files").json()["data"]]
    assert [job["id"] for job in client.get("/v1/jobs").json()["data"]] == [my_job["id"]]


def test_another_tenants_id_is_not_a_valid_cursor(other_tenant_client: Any, my_job: dict[str, Any]) -> None:
    response = other_tenant_client.get("/v1/jobs", params={"after": my_job["id"]})
    assert (response.status_code, response.json()["error"]["param"]) == (422, "after")


def test_another_tenants_job_cannot_be_a_model_reference(
    other_tenant_client: Any, my_job: dict[str, Any], upload_file: Any
) -> None:
    file = upload_file(other_tenant_client)
    spec = {
        "teacher": {"job": my_job["id"]},
        "data": {"train_file": file["id"]},
        "method": {"type": "response"},
    }
    response = other_tenant_client.post("/v1/jobs", json=spec)
    assert (response.status_code, response.json()["error"]["param"]) == (422, "teacher.job")
