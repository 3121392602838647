"""The sweep demo's pipeline at a tiny scale: a teacher, a sweep of trials through the API, the defaults."""

import json
from pathlib import Path

import pytest
from local_ports import free_port
from rich.console import Console
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

from bench.demo.comparison import Recipe, upload
from bench.service.embedded import embedded_service
from bench.sweep.classifier import Plan, Run, measure_defaults, run_sweep_demo
from bench.sweep.compare import format_comparison
from bench.sweep.summary import format_trials

pytestmark = pytest.mark.slow

TINY = Plan(
    recipe=Recipe(
        student_layers=[0, 2],
        teacher_epochs=2,
        student_epochs=1,
        teacher_learning_rate=2e-3,
        student_learning_rate=2e-3,
        batch_size=16,
        max_length=16,
    ),
    search={"method.temperature": [1.0, 4.0]},
    max_trials=2,
    eval_every_steps=None,
)


def test_the_sweep_demo_runs_its_trials_and_sets_the_best_against_the_defaults(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    save_tiny_bert_classifier(data_dir / "models" / "tiny-base", layers=4)
    paths = {name: tmp_path / f"{name}.jsonl" for name in ("train", "eval", "test")}
    for path, rows, seed in zip(paths.values(), (160, 40, 60), (1, 2, 4), strict=True):
        path.write_bytes(jsonl_bytes(sentiment_rows(rows, seed=seed)))
    output = Console(record=True, width=160)

    with embedded_service(data_dir, port=free_port(), log_path=tmp_path / "service.log") as client:
        data = upload(client, paths["train"], paths["eval"], paths["test"])
        run = Run("tiny-base", data, TINY, tmp_path / "students")
        summary = run_sweep_demo(client, run, output)
        summary["defaults"] = measure_defaults(client, run, output, teacher_job=summary["teacher"]["job"])
        trial_jobs = [client.get_job(row["job"]) for row in summary["trials"]]

    # Every trial is a job of the sweep that distils the demo's teacher with one searched temperature.
    assert len(summary["trials"]) == 2 and summary["status"] == "succeeded"
    assert all(job["spec"]["method"]["temperature"] in {1.0, 4.0} for job in trial_jobs)
    assert all(job["spec"]["teacher"]["job"] == summary["teacher"]["job"] for job in trial_jobs)
    # The best trial was measured once on the test split and set against a control.
    best = summary["best"]
    assert best["number"] in {0, 1} and best["test"]["accuracy"] >= 0
    assert best["verdict"]["verdict"] in {"helped", "did not help", "teacher no better than control"}
    # The demo's recipe ran after the sweep, with its own control, on the same data.
    defaults = summary["defaults"]
    assert defaults["retention"] == pytest.approx(
        defaults["test_accuracy"] / defaults["teacher_test_accuracy"]
    )
    assert "best trial" in format_comparison(summary) and "demo defaults, this run" in format_comparison(
        summary
    )
    assert "*" in format_trials(summary)
    json.dumps(summary)
