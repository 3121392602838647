"""The compose stack brings its long-running services back by itself: a crash or a reboot needs no hand."""

from pathlib import Path

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def test_every_long_running_compose_service_restarts_unless_stopped() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    # A one-shot service is one that others wait on to complete.
    one_shot = {
        name
        for service in services.values()
        for name, condition in (service.get("depends_on") or {}).items()
        if condition.get("condition") == "service_completed_successfully"
    }
    assert one_shot == {"migrate", "s3-bucket"}
    policies = {name: service.get("restart") for name, service in services.items() if name not in one_shot}
    long_running = ["postgres", "redis", "api", "worker", "webhooks"]
    long_running += ["worker-cuda", "s3", "ray-head", "ray-worker"]  # the profiles' services
    assert policies == dict.fromkeys(long_running, "unless-stopped")
