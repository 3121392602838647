"""`distillery sweep submit --follow` on the real API and a real worker: each trial, then the verdict."""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from in_process import in_process_client
from service_processes import start_worker, stop
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows
from typer.testing import CliRunner

from distillery.cli.main import app
from distillery.cli.state import CliState

pytestmark = pytest.mark.slow


@pytest.fixture
def no_sleep() -> None:
    """Here the follow loop waits for real between its polls (the other CLI tests skip the waits)."""


@pytest.fixture
def worker(settings: Any, tmp_path: Path) -> Iterator[None]:
    """One Celery worker on the test queue."""
    log_path = tmp_path / "worker.log"
    process = start_worker(
        {**os.environ, "DISTILLERY_HEARTBEAT_SECONDS": "1"}, queue_name=settings.queue_name, log_path=log_path
    )
    yield
    if stop(process) not in (0, -15):
        print(log_path.read_text()[-5000:])


def upload(client: Any, count: int, seed: int) -> str:
    """Upload `count` sentiment rows; returns the file's id."""
    response = client.post(
        "/v1/files", files={"file": ("rows.jsonl", jsonl_bytes(sentiment_rows(count, seed=seed)))}
    )
    assert response.status_code == 201, response.text
    file_id: str = response.json()["id"]
    return file_id


@pytest.fixture
def sweep_file(client: Any, model_root: Path, tmp_path: Path) -> Path:
    """Two trials over the soft targets' weight on a tiny teacher, with eval and test files."""
    if not (model_root / "tiny-teacher" / "config.json").exists():
        save_tiny_bert_classifier(model_root / "tiny-teacher")
    base = {
        "teacher": {"path": "tiny-teacher"},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {
            "train_file": upload(client, 64, seed=0),
            "eval_file": upload(client, 32, seed=1),
            "test_file": upload(client, 32, seed=2),
            "max_length": 16,
        },
        "method": {"type": "response", "temperature": 2.0},
        "training": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "warmup_ratio": 0.0},
    }
    spec = {"base": base, "search": {"method.alpha": [0.2, 0.8]}, "sampler": "grid", "pruner": "none"}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_submit_follow_logs_each_trial_and_ends_with_the_report_and_exit_code_0(
    client: Any, settings: Any, worker: None, sweep_file: Path
) -> None:
    api = in_process_client(client, settings.dev_api_key)
    runner = CliRunner()

    result = runner.invoke(
        app, ["sweep", "submit", str(sweep_file), "--follow", "--poll", "0.5"], obj=CliState(client=api)
    )

    assert result.exit_code == 0, result.output
    sweep_id = re.search(r"Created sweep (swp_\w+)", result.stderr).group(1)  # type: ignore[union-attr]
    sweep = api.get_sweep(sweep_id)
    report, lines = sweep["report"], result.stdout.splitlines()
    for trial in sweep["trials"]:
        alpha = trial["params"]["method.alpha"]
        assert f"trial {trial['number']} succeeded accuracy={trial['value']:.4g} alpha={alpha:.3g}" in lines
    assert any(line.startswith(f"Sweep {sweep_id} succeeded after ") for line in lines)
    best = sweep["best_trial"]
    assert f"Best trial #{best['number']} ({best['job_id']}): eval accuracy {best['value']:.4g}" in lines
    test_line = f"Test ({report['test']['job_id']}): student "
    control_line = f"Control (same_init, {report['control']['job_id']}): "
    assert any(line.startswith(test_line) and "accuracy=" in line for line in lines)
    assert any(line.startswith(control_line) and "accuracy=" in line for line in lines)
    assert any(
        line.startswith(f"Gain over the control: accuracy {report['gain']['accuracy']:+.4g}")
        for line in lines
    )
    assert f"Verdict: {report['verdict']['verdict']}" in lines
    assert f"  {report['verdict']['explanation']}" in lines
    assert "Trials: 2 run (2 completed, 0 pruned, 0 failed, 0 cancelled)" in lines
    assert any(line.startswith("Compute: ") and line.endswith(" CPU-hours, 0 GPU-hours") for line in lines)
