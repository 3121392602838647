"""`distillery sweep ...` with CliRunner against a client on the fake API: output, exit codes, requests."""

import io
from pathlib import Path
from typing import Any

import httpx
from cli_fake_api import FakeApi, json_body, make_sweep, make_trial, page
from rich.console import Console
from typer.testing import CliRunner

from distillery.cli.main import app
from distillery.cli.state import CliState
from distillery.cli.sweep_follow import follow_sweep
from distillery.cli.sweep_view import objective_of, sweep_panel, trials_done

SPEC = """\
base:
  teacher: {path: teacher}
  data: {train_file: file_1}
  method: {type: response}
search:
  method.alpha: {low: 0.1, high: 0.9}
  method.temperature: {low: 1, high: 8, log: true}
budget: {max_trials: 4}
"""


def run(api: FakeApi, *args: str, columns: int = 200) -> tuple[int, str, str]:
    """Run the CLI with a client on the fake API; returns (exit code, stdout, stderr)."""
    env = {"COLUMNS": str(columns)}
    result = CliRunner().invoke(app, list(args), obj=CliState(client=api.client()), env=env)
    return result.exit_code, result.stdout, result.stderr


def finished_sweep(status: str = "succeeded") -> dict[str, Any]:
    """A sweep of four trials, one pruned, with the best one's test run, its control and the verdict."""
    trials = [
        make_trial(0, "succeeded", 0.8125, method__alpha=0.45, method__temperature=3.1234),
        make_trial(1, "pruned", 0.5, method__alpha=0.12, method__temperature=7.9),
        make_trial(2, "succeeded", 0.8741, method__alpha=0.7, method__temperature=2.0),
        make_trial(3, "succeeded", 0.83, method__alpha=0.3, method__temperature=1.5),
    ]
    best = {key: trials[2][key] for key in ("number", "job_id", "value", "params")}
    report = {
        "objective": {"metric": "accuracy", "direction": "maximize", "split": "eval"},
        "best_trial": {key: best[key] for key in ("number", "job_id", "value")},
        "test": {
            "job_id": "job_test",
            "split": "test",
            "student": {"accuracy": 0.861},
            "teacher": {"accuracy": 0.872},
            "retention": {"accuracy": 0.9874},
        },
        "control": {
            "job_id": "job_ctl",
            "status": "succeeded",
            "mode": "same_init",
            "measures": "the soft targets alone",
            "metrics": {"accuracy": 0.842},
            "split": "test",
        },
        "gain": {"accuracy": 0.019},
        "verdict": {"verdict": "helped", "explanation": "the student beats its control by +0.019"},
        "spread": 0.0213,
        "trials": {"total": 4, "completed": 3, "pruned": 1, "failed": 0, "cancelled": 0},
        "cpu_hours": 0.41,
        "gpu_hours": 0.0,
    }
    return make_sweep(
        "swp_1",
        status,
        stage="done",
        trials=trials,
        best_trial=best,
        report=report if status == "succeeded" else None,
        finished_at=1_700_000_725,
    )


def test_submit_prints_the_sweep_id_alone_and_posts_the_spec_with_overrides(
    api: FakeApi, tmp_path: Path
) -> None:
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(SPEC)
    api.route("POST", "/v1/sweeps", lambda _r, _m: httpx.Response(201, json=make_sweep("swp_new", "running")))

    code, out, err = run(
        api,
        "sweep",
        "submit",
        str(spec_path),
        "--set",
        "search.method.alpha.high=0.8",
        "--set",
        "search.method.divergence=[forward_kl, reverse_kl]",
        "--set",
        "base.training.epochs=2",
        "--name",
        "tweets",
    )

    assert (code, out) == (0, "swp_new\n")
    assert "distillery sweep follow swp_new" in err
    body = json_body(api.requests[0])
    assert body["search"] == {
        "method.alpha": {"low": 0.1, "high": 0.8},
        "method.temperature": {"low": 1, "high": 8, "log": True},
        "method.divergence": ["forward_kl", "reverse_kl"],
    }
    assert body["base"]["training"] == {"epochs": 2}
    assert body["name"] == "tweets"


def test_submit_reads_a_json_spec_and_a_preset(api: FakeApi, tmp_path: Path) -> None:
    spec_path = tmp_path / "sweep.json"
    spec_path.write_text(
        '{"base": {"data": {"train_file": "file_1"}}, "search": "preset:response-classifier"}'
    )
    api.route("POST", "/v1/sweeps", lambda _r, _m: httpx.Response(201, json=make_sweep("swp_new")))

    code, out, _ = run(api, "sweep", "submit", str(spec_path))

    assert (code, out) == (0, "swp_new\n")
    assert json_body(api.requests[0])["search"] == "preset:response-classifier"


def follow_routes(api: FakeApi, final: dict[str, Any]) -> None:
    """The sweep is read running with one trial going, then with two, then finished."""
    states = [
        make_sweep("swp_1", trials=[make_trial(0, "running", None, method__alpha=0.45)]),
        make_sweep("swp_1", trials=[make_trial(0, "succeeded", 0.81, method__alpha=0.45)]),
        final,
    ]
    api.route("POST", "/v1/sweeps", lambda _r, _m: httpx.Response(201, json=make_sweep("swp_1")))
    api.route("GET", "/v1/sweeps/swp_1", lambda _r, _m: httpx.Response(200, json=states.pop(0)))


def test_submit_follow_logs_trials_then_the_report_and_exits_0_on_success(
    api: FakeApi, tmp_path: Path
) -> None:
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(SPEC)
    follow_routes(api, finished_sweep())

    code, out, err = run(api, "sweep", "submit", str(spec_path), "--follow", "--poll", "0")

    assert code == 0, out + err
    assert "Created sweep swp_1" in err
    lines = out.splitlines()
    assert "trial 0 running alpha=0.45" in lines
    assert "trial 0 succeeded accuracy=0.81 alpha=0.45" in lines
    assert "trial 1 pruned accuracy=0.5 alpha=0.12 temperature=7.9" in lines
    assert "Sweep swp_1 succeeded after 12m 05s" in lines
    assert "Best trial #2 (job_t2): eval accuracy 0.8741" in lines
    assert "  method.alpha = 0.7" in lines
    assert "Test (job_test): student accuracy=0.861" in lines
    assert "  retention accuracy 98.7%" in lines
    assert "Control (same_init, job_ctl): accuracy=0.842" in lines
    assert "Gain over the control: accuracy +0.019" in lines
    assert "Verdict: helped" in lines
    assert "  the student beats its control by +0.019" in lines
    assert "Spread of the objective across trials: ±0.0213" in lines
    assert "Trials: 4 run (3 completed, 1 pruned, 0 failed, 0 cancelled)" in lines
    assert "Compute: 0.41 CPU-hours, 0 GPU-hours" in lines


def test_follow_exits_1_when_the_sweep_did_not_succeed(api: FakeApi) -> None:
    follow_routes(api, finished_sweep("cancelled"))

    code, out, _ = run(api, "sweep", "follow", "swp_1", "--poll", "0")

    assert code == 1
    assert "Sweep swp_1 cancelled after 12m 05s" in out.splitlines()
    assert "Verdict" not in out


def test_the_live_table_marks_the_best_trial_and_fits_80_columns() -> None:
    sweep = finished_sweep()
    many = {
        "training.learning_rate": 1.2345e-4,
        "student.layers": [0, 2, 4],
        "method.divergence": "reverse_kl",
    }
    for trial in sweep["trials"]:
        trial["params"].update(many)
    console = Console(width=80, force_terminal=True, color_system=None, record=True)

    console.print(sweep_panel(sweep))

    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    rows = {line.split()[1]: line for line in text.splitlines() if line.split()[:2] == ["*", "2"]}
    assert len(rows) == 1 and "0.8741" in rows["2"] and "succeeded" in rows["2"]
    assert text.count("*  ") == 1
    assert "learning_rate=1.23e-04" in text and "layers=[0,2,4]" in text
    assert "pruned" in text and "best accuracy 0.8741 (#2)" in " ".join(text.split())


def test_get_shows_details_trials_and_report(api: FakeApi) -> None:
    api.route("GET", "/v1/sweeps/swp_1", finished_sweep())

    code, out, _ = run(api, "sweep", "get", "swp_1")

    assert code == 0
    assert "maximize eval accuracy" in out
    assert "tpe sampler, asha pruner" in out
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("*")] == [
        ["*", "2", "succeeded"]
    ]
    assert "Verdict: helped" in out


def test_get_json_prints_the_sweep_object(api: FakeApi) -> None:
    api.route("GET", "/v1/sweeps/swp_1", finished_sweep())

    code, out, _ = run(api, "sweep", "get", "swp_1", "--json")

    assert code == 0
    assert '"best_trial"' in out and '"verdict": "helped"' in out


def test_list_shows_status_stage_trials_and_best_value(api: FakeApi) -> None:
    running = make_sweep("swp_a", name="tweets", trials=[make_trial(0, "pruned"), make_trial(1, "running")])
    api.route("GET", "/v1/sweeps", page([running, finished_sweep()], has_more=True))

    code, out, _ = run(api, "sweep", "list", "--limit", "2")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STATUS", "STAGE", "TRIALS", "BEST", "CREATED"]
    assert lines[1].split()[:6] == ["swp_a", "tweets", "running", "trials", "1/4", "-"]
    assert lines[2].split()[:6] == ["swp_1", "succeeded", "done", "4/4", "0.8741", "(#2)"]
    assert "distillery sweep list --after swp_1" in out
    assert dict(api.requests[0].url.params) == {"limit": "2"}


def test_cancel_and_delete(api: FakeApi) -> None:
    api.route("POST", "/v1/sweeps/swp_1/cancel", make_sweep("swp_1", "cancelling"))
    api.route("DELETE", "/v1/sweeps/swp_1", lambda _r, _m: httpx.Response(204))

    assert run(api, "sweep", "cancel", "swp_1")[:2] == (0, "Sweep swp_1 cancelling\n")
    assert run(api, "sweep", "delete", "swp_1")[:2] == (0, "Deleted sweep swp_1 and its jobs\n")


def test_jobs_lists_one_sweeps_jobs(api: FakeApi) -> None:
    api.route("GET", "/v1/jobs", page([]))

    code, _, _ = run(api, "jobs", "--sweep", "swp_1")

    assert code == 0
    assert api.requests[0].url.params["sweep_id"] == "swp_1"


def test_follow_in_a_terminal_redraws_the_table_until_the_sweep_ends(api: FakeApi) -> None:
    follow_routes(api, finished_sweep())
    screen = io.StringIO()
    console = Console(file=screen, width=80, force_terminal=True, color_system=None)

    sweep = follow_sweep(api.client(), "swp_1", console, poll=0)

    assert sweep["status"] == "succeeded"
    assert len(api.requests) == 3  # read until it ended, then no more
    last_frame = screen.getvalue().rsplit("swp_1  running", 1)[-1]
    assert "swp_1  succeeded" in last_frame and "*  2  succeeded    0.8741" in last_frame


def test_a_running_grid_counts_its_points_and_a_spec_without_objective_ranks_by_the_tasks_metric() -> None:
    spec = {
        "base": {"task": "causal_lm"},
        "search": {"method.beta": [0.0, 0.5, 1.0], "training.epochs": {"low": 1, "high": 2}},
        "sampler": "grid",
        "budget": {"max_trials": 12},
        "objective": {"metric": None, "direction": None},
    }
    sweep = make_sweep("swp_g", spec=spec, trials=[make_trial(0, "succeeded", 3.2, method__beta=0.0)])

    assert trials_done(sweep) == "1/6"
    assert objective_of(sweep) == {"metric": "loss", "direction": "minimize"}
    assert trials_done({**sweep, "status": "cancelled"}) == "1/1"  # an ended sweep ran what it ran
