"""A sweep runs on a real worker: trials on the eval split, the best one on the test split once, one control,
and a report; trials after the first read the teacher's stored outputs; it survives a worker's death."""

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from local_ports import free_port
from service_processes import start_api, stop

pytestmark = pytest.mark.slow


def sweep_body(base: dict[str, Any]) -> dict[str, Any]:
    """Three trials over the soft targets' temperature and weight, one at a time."""
    return {
        "name": "tiny",
        "base": base,
        "search": {"method.temperature": [1.0, 4.0], "method.alpha": {"low": 0.2, "high": 0.8}},
        "sampler": "random",
        "budget": {"max_trials": 3, "max_parallel": 1},
        "seed": 3,
    }


def sweep_jobs(client: Any, sweep_id: str) -> dict[str, dict[str, Any]]:
    """The sweep's jobs by id."""
    jobs = client.get("/v1/jobs", params={"sweep_id": sweep_id, "limit": 100}).json()["data"]
    return {job["id"]: job for job in jobs}


def test_a_sweep_selects_on_eval_tests_the_best_trial_once_and_reports_its_gain_over_one_control(
    client: Any,
    base_spec: dict[str, Any],
    start_sweep_worker: Callable[[], Any],
    wait_for_sweep: Callable[..., dict[str, Any]],
) -> None:
    start_sweep_worker()
    sweep = client.post("/v1/sweeps", json=sweep_body(base_spec)).json()

    done = wait_for_sweep(client, sweep["id"])

    assert (done["status"], done["stage"]) == ("succeeded", "done"), done
    trials = done["trials"]
    assert [trial["status"] for trial in trials] == ["succeeded"] * 3
    assert all(trial["eval_curve"] and trial["value"] is not None for trial in trials)
    best = max(trials, key=lambda trial: (trial["value"], -trial["number"]))
    assert done["best_trial"]["job_id"] == best["job_id"]
    jobs = sweep_jobs(client, sweep["id"])
    assert len(jobs) == 5
    trial_jobs = [jobs[trial["job_id"]] for trial in trials]
    # Trials never see the test file; the best one's student is measured on it by one evaluation job.
    assert all(job["result"]["student"]["test"] is None for job in trial_jobs)
    report = done["report"]
    test_job = jobs[report["test"]["job_id"]]
    assert test_job["spec"]["training"]["epochs"] == 0
    assert test_job["spec"]["student"]["model"] == {"job": best["job_id"], "path": None}
    assert test_job["spec"]["data"]["test_file"] == base_spec["data"]["test_file"]
    assert report["test"]["split"] == "test" and "accuracy" in report["test"]["student"]
    control = jobs[report["control"]["job_id"]]
    assert control["spec"]["method"]["type"] == "supervised"
    assert control["spec"]["training"] == jobs[best["job_id"]]["spec"]["training"] | {"teacher_cache": "on"}
    assert report["control"]["mode"] == "same_init" and report["control"]["measures"]
    gain = report["test"]["student"]["accuracy"] - report["control"]["test"]["accuracy"]
    assert report["gain"]["accuracy"] == pytest.approx(gain)
    assert report["verdict"]["verdict"] in ("helped", "did not help", "teacher no better than control")
    assert report["trials"]["total"] == report["trials"]["completed"] == 3
    assert report["cpu_hours"] > 0 and report["gpu_hours"] == 0
    # The first trial stored the teacher's outputs; the others read them under the same key, whatever
    # their temperature and alpha, and ran no teacher pass of their own.
    caches = [job["result"]["training"]["teacher_cache"] for job in trial_jobs]
    assert [cache["status"] for cache in caches] == ["miss", "hit", "hit"]
    assert len({cache["key"] for cache in caches}) == 1
    assert (
        len({(trial["params"]["method.temperature"], trial["params"]["method.alpha"]) for trial in trials})
        == 3
    )


def test_a_sweep_finishes_after_its_worker_and_its_api_are_killed_mid_trial_and_others_start(
    settings: Any,
    base_spec: dict[str, Any],
    start_sweep_worker: Callable[[], Any],
    wait_for_sweep: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    body = {**sweep_body(base_spec), "budget": {"max_trials": 2, "max_parallel": 1}, "control": "none"}
    slow = {**base_spec, "training": {**base_spec["training"], "epochs": 6}}
    api, url = start_live_api(tmp_path / "api-1.log")
    worker = start_sweep_worker()
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {settings.dev_api_key}"}, timeout=30
    ) as client:
        response = client.post("/v1/sweeps", json={**body, "base": slow})
        assert response.status_code == 201, response.text
        sweep = response.json()
        wait_for_sweep(
            client,
            sweep["id"],
            until=lambda s: len(s["trials"]) == 2 and s["trials"][1]["status"] == "running",
        )

    for process in (worker, api):
        process.send_signal(signal.SIGKILL)
        process.wait()
    api, url = start_live_api(tmp_path / "api-2.log")
    start_sweep_worker()
    try:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {settings.dev_api_key}"}, timeout=30
        ) as client:
            done = wait_for_sweep(client, sweep["id"])
            second = client.get(f"/v1/jobs/{done['trials'][1]['job_id']}").json()
    finally:
        stop(api)

    assert (done["status"], done["stage"]) == ("succeeded", "done"), done
    assert [trial["status"] for trial in done["trials"]] == ["succeeded", "succeeded"]
    assert second["attempts"] == 2  # the killed worker's attempt, then the new worker's
    assert done["report"]["test"]["split"] == "test"


def start_live_api(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A uvicorn process of the API on the test database; returns it and its URL."""
    port = free_port()
    return start_api(dict(os.environ), port=port, log_path=log_path), f"http://127.0.0.1:{port}"
