"""What the deployment files must agree with: the Dockerfile's targets, the settings, the app's routes."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "k8s"
# The standard variables boto3 reads for the object store (DISTILLERY_STORAGE_URL's endpoint and keys).
AWS_VARIABLES = frozenset(
    {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
)


def dockerfile_targets() -> set[str]:
    """The stage names of the Dockerfile (`FROM image AS name`)."""
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE.read_text(), flags=re.MULTILINE | re.I))


def settings_variables() -> set[str]:
    """The environment variable of every Settings field."""
    from app.core.config import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def unknown_variables(names: set[str]) -> set[str]:
    """Names that no process reads: neither a setting nor a standard AWS variable."""
    return {name for name in names if name not in settings_variables() | AWS_VARIABLES}


def probe_paths() -> set[str]:
    """The paths of the app's liveness and readiness probes."""
    from app.api.health import router

    return {route.path for route in router.routes}  # type: ignore[attr-defined]
