"""`distillery sweep ...` and the client's sweep calls against the real API on the test database.

No worker runs here: the sweep is submitted, read, listed, cancelled and deleted, and a bad spec is
refused, through the same requests a user's terminal sends.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from in_process import in_process_client
from typer.testing import CliRunner

from distillery.cli.main import app
from distillery.cli.state import CliState
from distillery.client import ApiError, DistilleryClient


@pytest.fixture
def api_client(client: Any, settings: Any) -> Iterator[DistilleryClient]:
    """The Python client of the test API, authenticated with the development key."""
    with in_process_client(client, settings.dev_api_key) as api:
        yield api


@pytest.fixture
def sweep_file(tmp_path: Path, job_spec: dict[str, Any]) -> Path:
    """A grid sweep of two trials over the soft targets' weight, on the valid job of the default tenant."""
    spec = {
        "name": "alpha-grid",
        "base": job_spec,
        "search": {"method.alpha": [0.3, 0.7]},
        "sampler": "grid",
        "budget": {"max_trials": 2, "max_parallel": 1},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(api: DistilleryClient, *args: str) -> tuple[int, str, str]:
    """Run the CLI with the client; returns (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args), obj=CliState(client=api), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_submit_get_list_cancel_and_delete_a_sweep(api_client: DistilleryClient, sweep_file: Path) -> None:
    code, out, err = run(api_client, "sweep", "submit", str(sweep_file), "--set", "method.alpha=0.5")
    assert code == 1 and "Error: 422" in err  # a top-level key the sweep spec does not have

    code, out, _ = run(
        api_client, "sweep", "submit", str(sweep_file), "--set", "search.method.alpha=[0.2, 0.6]"
    )
    assert code == 0
    sweep_id = out.strip()
    assert sweep_id.startswith("swp_") and out == f"{sweep_id}\n"

    code, out, _ = run(api_client, "sweep", "get", sweep_id, "--json")
    sweep = json.loads(out)
    assert (code, sweep["id"], sweep["object"], sweep["name"]) == (0, sweep_id, "sweep", "alpha-grid")
    assert sweep["status"] == "running" and sweep["spec"]["search"] == {"method.alpha": [0.2, 0.6]}
    listed = run(api_client, "sweep", "list")[1].splitlines()
    assert listed[1].split()[:3] == [sweep_id, "alpha-grid", "running"]
    jobs = list(api_client.iter_jobs(sweep_id=sweep_id))
    assert all(job["sweep_id"] == sweep_id for job in jobs)

    code, out, _ = run(api_client, "sweep", "cancel", sweep_id)
    assert (
        code == 0 and out.split()[:2] == ["Sweep", sweep_id] and out.split()[2] in {"cancelling", "cancelled"}
    )
    assert api_client.wait_for_sweep(sweep_id, poll=0.2, timeout=30)["status"] == "cancelled"
    assert all(job["status"] == "cancelled" for job in api_client.iter_jobs(sweep_id=sweep_id))

    assert run(api_client, "sweep", "delete", sweep_id)[:2] == (0, f"Deleted sweep {sweep_id} and its jobs\n")
    code, _, err = run(api_client, "sweep", "get", sweep_id)
    assert code == 1 and err.startswith("Error: 404")
    assert list(api_client.iter_jobs(sweep_id=sweep_id)) == []


def test_a_search_value_the_base_job_refuses_is_a_4xx_naming_the_dimension(
    api_client: DistilleryClient, sweep_file: Path
) -> None:
    code, out, err = run(
        api_client, "sweep", "submit", str(sweep_file), "--set", "search.method.alpha.high=2"
    )
    assert (code, out) == (1, "")  # a range's end set on a list of choices: refused before any request
    assert "search.method.alpha.high: a list is indexed by a number" in err

    spec = yaml.safe_load(sweep_file.read_text())
    spec["search"] = {"method.alpha": {"low": 0.1, "high": 2.0}}
    with pytest.raises(ApiError) as refused:
        api_client.create_sweep(spec)
    assert refused.value.status == 422 and refused.value.param == "search.method.alpha"
    assert list(api_client.iter_sweeps()) == []
