"""What a job asks of the hardware is checked at creation: each refusal is a 422 naming its field."""

from typing import Any

import pytest

from app.jobs.models import Job
from tests.api.test_input_bounds import assert_invalid, with_field


def test_resources_default_to_one_device_of_any_kind_at_normal_priority(
    client: Any, job_spec: dict[str, Any]
) -> None:
    response = client.post("/v1/jobs", json=job_spec)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["resources"] == {"accelerator": "auto", "devices": 1, "nodes": 1, "min_memory_gb": None}
    assert (spec["priority"], spec["training"]["parallelism"]) == ("normal", "auto")


def test_a_multi_device_job_is_accepted_with_its_global_batch(client: Any, job_spec: dict[str, Any]) -> None:
    body = with_field(job_spec, "resources", {"devices": 2, "accelerator": "cpu"})
    body = with_field(body, "priority", "high")
    body = with_field(body, "training.batch_size", 8)
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["resources"]["devices"] == 2


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("resources.devices", 9, "resources.devices"),  # above the service's DISTILLERY_MAX_JOB_DEVICES (8)
        ("resources.devices", 0, "resources.devices"),
        ("resources.nodes", 0, "resources.nodes"),
        ("resources.nodes", 2, "resources.nodes"),  # more than one machine needs the ray executor
        ("resources.accelerator", "tpu", "resources.accelerator"),
        ("resources.min_memory_gb", 5000, "resources.min_memory_gb"),
        ("resources.min_memory_gb", -1, "resources.min_memory_gb"),
        ("priority", "urgent", "priority"),
        ("training.parallelism", "pipeline", "training.parallelism"),
    ],
)
def test_requests_beyond_the_service_or_outside_the_choices_are_refused(
    client: Any, job_spec: dict[str, Any], field: str, value: Any, param: str
) -> None:
    body = with_field(job_spec, "training.batch_size", 72)  # splits across 9 devices: the limit is what fails
    assert_invalid(client.post("/v1/jobs", json=with_field(body, field, value)), param)


def test_a_global_batch_that_does_not_split_across_the_devices_is_refused(
    client: Any, job_spec: dict[str, Any]
) -> None:
    body = with_field(with_field(job_spec, "resources.devices", 3), "training.batch_size", 8)
    response = client.post("/v1/jobs", json=body)
    assert_invalid(response, "training.batch_size")
    assert "3 devices" in response.json()["error"]["message"]


def test_fsdp_refuses_a_method_that_reads_inner_layers_and_says_why(
    client: Any, job_spec: dict[str, Any]
) -> None:
    body = with_field(job_spec, "method", {"type": "feature"})
    body = with_field(with_field(body, "training.parallelism", "fsdp"), "resources.devices", 2)
    response = client.post("/v1/jobs", json=body)
    assert_invalid(response, "training.parallelism")
    assert "ddp" in response.json()["error"]["message"]


def test_a_multi_node_job_is_accepted_with_the_ray_executor_up_to_its_limit(
    make_client: Any, settings: Any, db_session: Any, job_spec: dict[str, Any]
) -> None:
    ray_client = make_client(api_key=settings.dev_api_key, executor="ray", ray_max_job_nodes=2)
    body = with_field(job_spec, "resources", {"devices": 2, "nodes": 2, "accelerator": "cpu"})
    response = ray_client.post("/v1/jobs", json=with_field(body, "training.batch_size", 8))
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["resources"]["nodes"] == 2
    # The scheduler counts every device of every node against the worker's slots and the tenant's quota.
    assert db_session.get(Job, response.json()["id"]).devices == 4

    too_many = with_field(with_field(body, "resources.nodes", 3), "training.batch_size", 12)
    response = ray_client.post("/v1/jobs", json=too_many)
    assert_invalid(response, "resources.nodes")
    assert "DISTILLERY_RAY_MAX_JOB_NODES" in response.json()["error"]["message"]


def test_the_global_batch_must_split_across_every_node_and_device(
    make_client: Any, settings: Any, job_spec: dict[str, Any]
) -> None:
    ray_client = make_client(api_key=settings.dev_api_key, executor="ray")
    body = with_field(job_spec, "resources", {"devices": 2, "nodes": 2, "accelerator": "cpu"})
    response = ray_client.post("/v1/jobs", json=with_field(body, "training.batch_size", 6))
    assert_invalid(response, "training.batch_size")
    assert "4 devices" in response.json()["error"]["message"]
