"""On a worker whose CPU kernels cannot run bf16, `bf16` fails at start as a user error and `auto` runs fp32.

The worker runs with oneDNN limited to AVX2 (ONEDNN_MAX_CPU_ISA), as on an AVX2-only CPU: torch then
reports no usable bf16, whatever this machine's own instructions.
"""

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from service_processes import start_worker, stop

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("avx2_worker")]
ON_THE_CPU = {"resources": {"accelerator": "cpu"}}


@pytest.fixture(scope="module")
def avx2_worker(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """`celery -A worker worker` whose job processes see oneDNN limited to AVX2. It alone takes the `cpu`
    queue's jobs (this module's), so that no other module's worker still stopping runs them."""
    from app.core.celery import job_queue

    log_path = tmp_path_factory.mktemp("avx2-worker") / "worker.log"
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "DISTILLERY_RECONCILE_SECONDS": "3600"}
    env["DISTILLERY_WORKER_ACCELERATOR"] = "cpu"
    process = start_worker(env, queue_name=job_queue(settings.queue_name, "cpu"), log_path=log_path)
    yield process
    stop(process)


def events_of(client: Any, job_id: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = client.get(f"/v1/jobs/{job_id}/events", params={"limit": 100}).json()["data"]
    return data


def test_bf16_on_a_cpu_without_usable_bf16_fails_at_start_naming_the_field(
    client: Any, distill_spec: dict[str, Any], wait_for: Callable[..., dict[str, Any]]
) -> None:
    spec = {**distill_spec, "training": {**distill_spec["training"], "precision": "bf16"}, **ON_THE_CPU}
    job = client.post("/v1/jobs", json=spec).json()

    done = wait_for(client, job["id"], timeout=120)

    assert done["status"] == "failed"
    error = done["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "user",
        "precision_unsupported",
        "training.precision",
    )
    assert "'auto'" in error["message"] and "'fp32'" in error["message"]
    assert done["progress"]["step"] == 0


def test_auto_on_a_cpu_without_usable_bf16_trains_in_fp32_and_says_why(
    client: Any, distill_spec: dict[str, Any], wait_for: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    job = client.post("/v1/jobs", json={**distill_spec, **ON_THE_CPU}).json()

    done = wait_for(client, job["id"], timeout=300)

    assert done["status"] == "succeeded", done["error"]
    training = done["result"]["training"]
    assert training["precision"] == "fp32"
    assert training["precision_reason"].startswith("auto: ") and "emulated" in training["precision_reason"]
    messages = [event["message"] for event in events_of(client, job["id"])]
    assert f"precision fp32 ({training['precision_reason']})" in messages
