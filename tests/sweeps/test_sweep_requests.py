"""POST /v1/sweeps checks the search space against the base job, then queues trials as ordinary jobs."""

from pathlib import Path
from typing import Any

import optuna
import pytest
from sqlalchemy import create_engine, inspect

from app.sweeps.schemas import SweepCreate
from app.sweeps.study import storage
from distillery.jobspec.sweep_presets import PRESETS


@pytest.fixture
def base_spec(base_spec: dict[str, Any]) -> dict[str, Any]:
    """The sweeps' base job for a CUDA worker: no CPU worker another test module leaves running takes its
    trials, so they stay queued for this module's own passes and claims."""
    return {**base_spec, "resources": {"accelerator": "cuda"}}


def sweep_body(base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A small sweep over alpha and temperature."""
    return {
        "name": "tiny sweep",
        "base": base,
        "search": {"method.alpha": {"low": 0.1, "high": 0.9}, "method.temperature": [1.0, 4.0]},
        "budget": {"max_trials": 3, "max_parallel": 2},
        **overrides,
    }


@pytest.mark.parametrize(
    ("search", "param"),
    [
        ({"method.alpha": {"low": 0.1, "high": 1.5}}, "search.method.alpha"),
        ({"method.alpha": {"low": 0.9, "high": 0.1}}, "search.method.alpha.low"),
        ({"method.beta": [0.1]}, "search.method.beta"),
        ({"training.epochs": {"low": 1.5, "high": 3}}, "search.training.epochs"),
        ({"training.epochs": [1, 500]}, "search.training.epochs"),
        ({"student.layers": [[0], [7, 300]]}, "search.student.layers"),
        ({"method.divergence": ["forward_kl", "backward"]}, "search.method.divergence"),
        ("preset:nothing", "search"),
    ],
)
def test_a_search_space_the_base_job_refuses_is_a_4xx_naming_the_dimension(
    client: Any, base_spec: dict[str, Any], search: Any, param: str
) -> None:
    response = client.post("/v1/sweeps", json=sweep_body(base_spec, search=search))

    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param
    assert client.get("/v1/sweeps").json()["data"] == []


def test_an_objective_the_jobs_do_not_report_is_a_4xx(client: Any, base_spec: dict[str, Any]) -> None:
    response = client.post("/v1/sweeps", json=sweep_body(base_spec, objective={"metric": "perplexity"}))

    assert response.status_code == 422
    assert response.json()["error"]["param"] == "objective.metric"


def test_a_base_job_naming_a_missing_file_is_a_4xx_naming_its_field(
    client: Any, base_spec: dict[str, Any]
) -> None:
    base = {**base_spec, "data": {**base_spec["data"], "eval_file": "file_missing"}}

    response = client.post("/v1/sweeps", json=sweep_body(base))

    assert response.status_code == 422
    assert response.json()["error"]["param"] == "base.data.eval_file"


def test_a_sweep_queues_its_first_trials_as_jobs_of_the_tenant_without_the_test_file(
    client: Any, base_spec: dict[str, Any]
) -> None:
    response = client.post("/v1/sweeps", json=sweep_body(base_spec, search="preset:response-classifier"))

    assert response.status_code == 201, response.text
    sweep = response.json()
    assert sweep["object"] == "sweep" and sweep["id"].startswith("swp_")
    assert (sweep["status"], sweep["stage"]) == ("running", "trials")
    assert set(sweep["spec"]["search"]) == set(PRESETS["response-classifier"])
    assert [trial["number"] for trial in sweep["trials"]] == [0, 1]  # max_parallel 2
    jobs = client.get("/v1/jobs", params={"sweep_id": sweep["id"]}).json()["data"]
    assert len(jobs) == 2 and {job["sweep_id"] for job in jobs} == {sweep["id"]}
    for trial in sweep["trials"]:
        job = client.get(f"/v1/jobs/{trial['job_id']}").json()
        assert job["status"] == "queued"
        assert job["spec"]["data"]["test_file"] is None
        assert job["spec"]["training"]["teacher_cache"] == "on"
        assert job["spec"]["method"]["alpha"] == trial["params"]["method.alpha"]
        assert 0.1 <= trial["params"]["method.alpha"] <= 0.9
    assert sweep["trials"][0]["params"] != sweep["trials"][1]["params"]


def test_cancelling_a_sweep_cancels_its_queued_trials_and_deleting_it_removes_them(
    client: Any, base_spec: dict[str, Any]
) -> None:
    sweep = client.post("/v1/sweeps", json=sweep_body(base_spec)).json()
    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 409

    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel").json()

    assert cancelled["status"] == "cancelled"
    assert {trial["status"] for trial in cancelled["trials"]} == {"cancelled"}
    assert client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 409
    job_id = cancelled["trials"][0]["job_id"]
    assert client.delete(f"/v1/jobs/{job_id}").json()["error"]["code"] == "job_in_sweep"
    assert client.delete(f"/v1/sweeps/{sweep['id']}").status_code == 200
    assert client.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404


def test_another_tenant_sees_no_sweep(
    client: Any, other_tenant_client: Any, base_spec: dict[str, Any]
) -> None:
    sweep = client.post("/v1/sweeps", json=sweep_body(base_spec)).json()

    assert other_tenant_client.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert other_tenant_client.get("/v1/sweeps").json()["data"] == []
    assert other_tenant_client.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 404
    listed = client.get("/v1/sweeps").json()
    assert [item["id"] for item in listed["data"]] == [sweep["id"]]


def test_the_documented_examples_are_valid_sweeps(anonymous_client: Any) -> None:
    openapi = anonymous_client.get("/openapi.json").json()
    content = openapi["paths"]["/v1/sweeps"]["post"]["requestBody"]["content"]["application/json"]

    for example in content["examples"].values():
        SweepCreate.model_validate(example["value"])


def test_optuna_keeps_its_tables_out_of_the_service_schema_and_a_deleted_sweep_takes_its_study(
    client: Any, settings: Any, base_spec: dict[str, Any]
) -> None:
    sweep = client.post("/v1/sweeps", json=sweep_body(base_spec)).json()
    engine = create_engine(settings.database_url)
    try:
        assert "studies" not in inspect(engine).get_table_names()
        assert "studies" in inspect(engine).get_table_names(schema="optuna")
    finally:
        engine.dispose()
    assert sweep["id"] in optuna.get_all_study_names(storage(settings.database_url))

    client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    client.delete(f"/v1/sweeps/{sweep['id']}")

    assert sweep["id"] not in optuna.get_all_study_names(storage(settings.database_url))


def test_sqlite_keeps_the_study_in_a_file_beside_the_service_database(tmp_path: Path) -> None:
    store = storage(f"sqlite:///{tmp_path / 'distillery.db'}")
    optuna.create_study(storage=store, study_name="swp_sqlite")

    assert (tmp_path / "distillery.optuna.db").exists()
    assert optuna.get_all_study_names(storage(f"sqlite:///{tmp_path / 'distillery.db'}")) == ["swp_sqlite"]
