"""The Kubernetes manifests in deploy/k8s describe a deployment that can run: every file parses, every
object is of a known kind and version, and what they name (images, settings, probes, ports) exists."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.deployment_facts import (
    K8S_DIR,
    dockerfile_targets,
    probe_paths,
    unknown_variables,
)

API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "RayCluster": "ray.io/v1",
}


def manifests() -> list[dict[str, Any]]:
    """Every object of every file under deploy/k8s."""
    files = sorted(K8S_DIR.glob("*.yaml"))
    assert files, f"no manifests in {K8S_DIR}"
    return [doc for path in files for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod templates of a workload: one for a Deployment or Job, the head's and each group's for Ray."""
    spec = obj.get("spec", {})
    if obj["kind"] in ("Deployment", "Job"):
        yield spec["template"]["spec"]
    elif obj["kind"] == "RayCluster":
        yield spec["headGroupSpec"]["template"]["spec"]
        for group in spec["workerGroupSpecs"]:
            yield group["template"]["spec"]


def containers() -> list[dict[str, Any]]:
    return [container for obj in manifests() for pod in pod_specs(obj) for container in pod["containers"]]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in manifests() if obj["kind"] == kind]


def test_every_object_has_a_known_kind_and_api_version() -> None:
    for obj in manifests():
        assert obj["apiVersion"] == API_VERSIONS.get(obj["kind"]), obj["metadata"]["name"]
        assert obj["metadata"]["namespace" if obj["kind"] != "Namespace" else "name"] == "distillery"


def test_the_api_and_each_worker_class_are_deployments_and_multi_node_jobs_a_ray_cluster() -> None:
    deployments = {obj["metadata"]["name"] for obj in of_kind("Deployment")}
    assert {"distillery-api", "distillery-worker-cpu", "distillery-worker-cuda", "distillery-webhooks"} <= (
        deployments
    )
    assert len(of_kind("RayCluster")) == 1


def test_every_image_is_built_by_a_target_of_the_dockerfile() -> None:
    targets = dockerfile_targets()
    for container in containers():
        image = container["image"].rsplit(":", 1)[0]
        assert image.rsplit("/", 1)[-1] in targets, image


def test_the_cuda_pods_ask_for_gpus_and_run_the_cuda_image() -> None:
    for container in containers():
        gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        cuda_image = container["image"].startswith("distillery/worker-cuda:")
        assert (gpus is not None) == cuda_image, container["name"]


def test_every_environment_variable_is_read_by_the_service() -> None:
    names = {item["name"] for container in containers() for item in container.get("env", [])}
    for obj in of_kind("ConfigMap"):
        names |= set(obj["data"])
    for obj in of_kind("Secret"):
        names |= set(obj["stringData"])
    assert names, "no settings found"
    assert unknown_variables(names) == set()


def test_every_pod_reads_the_shared_config_and_secrets() -> None:
    for container in containers():
        sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert sources == {"distillery-config", "distillery-secrets"}, container["name"]


def test_the_migration_runs_once_as_a_single_job_and_nowhere_else() -> None:
    (job,) = [obj for obj in of_kind("Job") if "migrate" in commands_of(obj)]
    assert job["spec"].get("parallelism", 1) == 1
    assert job["spec"].get("completions", 1) == 1
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    for obj in of_kind("Deployment") + of_kind("RayCluster"):
        assert "migrate" not in commands_of(obj), obj["metadata"]["name"]


def commands_of(obj: dict[str, Any]) -> set[str]:
    return {word for pod in pod_specs(obj) for c in pod["containers"] for word in c.get("command", [])}


def test_api_probes_hit_the_apps_health_endpoints_on_its_port() -> None:
    (api,) = [obj for obj in of_kind("Deployment") if obj["metadata"]["name"] == "distillery-api"]
    (container,) = api["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    served = container["command"][container["command"].index("--port") + 1]
    assert list(ports.values()) == [int(served)]
    for probe in ("livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] in probe_paths()
        assert check["port"] in ports or check["port"] in ports.values()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.parametrize("service_name", ["distillery-api"])
def test_the_service_targets_a_port_its_pods_expose(service_name: str) -> None:
    (service,) = [obj for obj in of_kind("Service") if obj["metadata"]["name"] == service_name]
    selected = [
        obj
        for obj in of_kind("Deployment")
        if service["spec"]["selector"].items() <= obj["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(selected) == 1
    exposed = {
        key
        for container in selected[0]["spec"]["template"]["spec"]["containers"]
        for port in container.get("ports", [])
        for key in (port["name"], port["containerPort"])
    }
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in exposed


def test_the_ray_address_is_the_head_services_job_api() -> None:
    (cluster,) = of_kind("RayCluster")
    (config,) = of_kind("ConfigMap")
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    dashboard = next(port["containerPort"] for port in head["ports"] if port["name"] == "dashboard")
    # KubeRay names the head's Service `<cluster>-head-svc`.
    expected = f"http://{cluster['metadata']['name']}-head-svc.distillery.svc:{dashboard}"
    assert config["data"]["DISTILLERY_RAY_ADDRESS"] == expected


def test_the_files_are_the_ones_the_docs_name() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    for path in sorted(K8S_DIR.glob("*.yaml")):
        assert f"deploy/k8s/{path.name}" in docs
