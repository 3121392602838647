"""The driver's passes are idempotent and one at a time: a trial Optuna handed out gets exactly one job."""

from datetime import timedelta
from typing import Any

import optuna
import pytest
from sqlalchemy import update

from app.core.base import utcnow
from app.sweeps.driver import advance
from app.sweeps.models import Sweep
from app.sweeps.study import storage


@pytest.fixture
def base_spec(base_spec: dict[str, Any]) -> dict[str, Any]:
    """The sweeps' base job for a CUDA worker: no CPU worker another test module leaves running takes its
    trials, so they stay queued for this module's own passes and claims."""
    return {**base_spec, "resources": {"accelerator": "cuda"}}


def sweep_body(base: dict[str, Any]) -> dict[str, Any]:
    return {"base": base, "search": {"method.alpha": {"low": 0.1, "high": 0.9}}, "budget": {"max_trials": 4}}


def test_a_trial_asked_by_a_pass_that_stopped_before_storing_its_job_gets_one_on_the_next_pass(
    client: Any, settings: Any, base_spec: dict[str, Any]
) -> None:
    sweep = client.post("/v1/sweeps", json=sweep_body(base_spec)).json()
    study = optuna.load_study(study_name=sweep["id"], storage=storage(settings.database_url))
    orphan = study.ask({"method.alpha": optuna.distributions.FloatDistribution(0.1, 0.9)})

    advance(sweep_id=sweep["id"], settings=settings)
    advance(sweep_id=sweep["id"], settings=settings)

    trials = client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"]
    assert [trial["number"] for trial in trials] == [0, 1]
    assert trials[1]["params"] == {"method.alpha": orphan.params["method.alpha"]}
    assert len(study.get_trials()) == 2


def test_a_pass_waits_while_another_holds_the_sweep(
    client: Any, settings: Any, base_spec: dict[str, Any], db_session: Any
) -> None:
    body = {**sweep_body(base_spec), "budget": {"max_trials": 4, "max_parallel": 1}}
    sweep = client.post("/v1/sweeps", json=body).json()
    job_id = sweep["trials"][0]["job_id"]
    client.post(f"/v1/jobs/{job_id}/cancel")
    held = (
        update(Sweep).where(Sweep.id == sweep["id"]).values(advancing_until=utcnow() + timedelta(minutes=1))
    )
    db_session.execute(held)
    db_session.commit()

    advance(sweep_id=sweep["id"], settings=settings)
    assert len(client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"]) == 1

    db_session.execute(update(Sweep).where(Sweep.id == sweep["id"]).values(advancing_until=None))
    db_session.commit()
    advance(sweep_id=sweep["id"], settings=settings)
    trials = client.get(f"/v1/sweeps/{sweep['id']}").json()["trials"]
    assert [trial["status"] for trial in trials] == ["cancelled", "queued"]
