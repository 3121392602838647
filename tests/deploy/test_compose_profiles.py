"""The compose file's profiles: a CUDA worker that reserves GPUs, an S3 store that needs no MinIO image, a
Ray head and node; every service built from a real Dockerfile target, with settings the service reads."""

from typing import Any

import yaml

from deploy.deployment_facts import COMPOSE_FILE, dockerfile_targets, probe_paths, unknown_variables


def services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services


def in_profile(profile: str) -> dict[str, Any]:
    return {name: s for name, s in services().items() if profile in s.get("profiles", [])}


def test_the_default_stack_has_no_profile_service() -> None:
    default = {name for name, service in services().items() if not service.get("profiles")}
    assert default == {"postgres", "redis", "migrate", "api", "worker", "webhooks"}


def test_every_built_service_names_a_dockerfile_target() -> None:
    targets = dockerfile_targets()
    built = {name: s["build"]["target"] for name, s in services().items() if "build" in s}
    assert set(built.values()) <= targets
    assert built["worker"] == "worker"
    assert built["worker-cuda"] == "worker-cuda"


def test_the_gpu_profile_reserves_nvidia_gpus_for_a_cuda_worker() -> None:
    (name,) = in_profile("gpu")
    service = services()[name]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert service["build"]["target"] == "worker-cuda"


def test_the_s3_profile_runs_motos_server_and_creates_the_bucket() -> None:
    profile = in_profile("s3")
    assert profile["s3"]["image"].startswith("motoserver/moto:")
    assert not any("minio" in str(service) for service in services().values())
    assert profile["s3-bucket"]["depends_on"]["s3"]["condition"] == "service_healthy"
    endpoint = services()["api"]["environment"]["AWS_ENDPOINT_URL_S3"]
    port = profile["s3"]["ports"][0].split(":")[-1]
    assert endpoint == f"${{AWS_ENDPOINT_URL_S3:-http://s3:{port}}}"


def test_the_ray_profile_is_a_head_and_one_node_joined_to_it() -> None:
    profile = in_profile("ray")
    assert set(profile) == {"ray-head", "ray-worker"}
    assert "--head" in profile["ray-head"]["command"]
    assert "--address=ray-head:6379" in profile["ray-worker"]["command"]
    address = services()["worker"]["environment"]["DISTILLERY_RAY_ADDRESS"]
    assert address == "http://ray-head:8265" and "8265:8265" in profile["ray-head"]["ports"]


def test_every_environment_variable_is_read_by_the_service() -> None:
    names = {name for service in services().values() for name in (service.get("environment") or {})}
    own = {name for name in names if not name.startswith("POSTGRES_")}
    assert unknown_variables(own) == set()


def test_the_api_healthcheck_asks_a_real_probe_on_the_port_it_publishes() -> None:
    api = services()["api"]
    check = " ".join(api["healthcheck"]["test"])
    path = check.split("127.0.0.1:8000", 1)[1].split("'")[0]
    assert path in probe_paths()
    assert api["ports"] == ["8000:8000"]
