"""A trial whose eval metrics trail the others' is pruned through the path a worker records them by."""

from typing import Any

import optuna
import pytest

from app.jobs.lifecycle import JobStatus, MetricsLine, claim, finish, record_events
from app.sweeps.lifecycle import job_ended, trial_evaluated
from app.sweeps.study import storage

WORKER = "test-worker"


@pytest.fixture
def base_spec(base_spec: dict[str, Any]) -> dict[str, Any]:
    """The sweeps' base job for a CUDA worker: no CPU worker another test module leaves running takes its
    trials, so they stay queued for this module's own passes and claims."""
    return {**base_spec, "resources": {"accelerator": "cuda"}}


def run_trial(client: Any, settings: Any, job_id: str, values: list[float]) -> bool:
    """Claim the trial and record an evaluation per value at steps 4, 8...; True once it was pruned."""
    assert claim(job_id=job_id, worker_id=WORKER) is not None
    for index, value in enumerate(values):
        line = MetricsLine(step=4 * (index + 1), epoch=index + 1.0, split="eval", metrics={"accuracy": value})
        record_events(job_id=job_id, records=[line], settings=settings)
        if trial_evaluated(job_id=job_id, settings=settings):
            return True
    return False


def end_trial(settings: Any, job_id: str, status: JobStatus, accuracy: float | None = None) -> None:
    result = {"student": {"eval": {"accuracy": accuracy}}} if accuracy is not None else None
    assert finish(job_id=job_id, worker_id=WORKER, status=status, result=result)
    job_ended(job_id=job_id, settings=settings)


def test_a_trailing_trial_is_cancelled_as_pruned_and_optuna_records_it_pruned(
    client: Any, settings: Any, base_spec: dict[str, Any]
) -> None:
    # No test file: the best trial's eval metrics are the report's, and no job reads its (unstored) student.
    base = {**base_spec, "data": {**base_spec["data"], "test_file": None}}
    body = {
        "base": base,
        "search": {"method.alpha": [0.2, 0.5, 0.8]},
        "sampler": "grid",
        "budget": {"max_trials": 3, "max_parallel": 1},
        "control": "none",
    }
    sweep = client.post("/v1/sweeps", json=body).json()
    for accuracy in (0.9, 0.85):
        job_id = client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"][-1]["job_id"]
        assert not run_trial(client, settings, job_id, [accuracy, accuracy])
        end_trial(settings, job_id, JobStatus.SUCCEEDED, accuracy)

    last = client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"][-1]
    assert last["number"] == 2
    assert run_trial(client, settings, last["job_id"], [0.1, 0.1])
    job = client.get(f"/v1/jobs/{last['job_id']}").json()
    assert job["status"] == "cancelling"
    end_trial(settings, last["job_id"], JobStatus.CANCELLED)

    job = client.get(f"/v1/jobs/{last['job_id']}").json()
    assert job["status"] == "cancelled"
    assert job["error"]["code"] == "pruned"
    assert "step 4" in job["error"]["message"] and "0.1" in job["error"]["message"]
    done = client.get(f"/v1/sweeps/{sweep['id']}").json()
    assert [trial["status"] for trial in done["trials"]] == ["succeeded", "succeeded", "pruned"]
    assert done["trials"][2]["eval_curve"] == [{"step": 4, "value": 0.1}]
    assert done["best_trial"]["number"] == 0 and done["best_trial"]["value"] == 0.9
    assert (done["status"], done["stage"]) == ("succeeded", "done")
    assert done["report"]["trials"] == {"total": 3, "completed": 2, "pruned": 1, "failed": 0, "cancelled": 0}
    study = optuna.load_study(study_name=sweep["id"], storage=storage(settings.database_url))
    states = [trial.state for trial in study.get_trials()]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.PRUNED]
