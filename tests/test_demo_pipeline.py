"""The demo's pipeline (teacher, distilled student, control through the embedded service) at a tiny scale."""

import json
from pathlib import Path

import pytest
from local_ports import free_port
from rich.console import Console
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

from app.cli.quickstart.comparison import Recipe, format_table, run_comparison, upload
from app.cli.quickstart.service import embedded_service

pytestmark = pytest.mark.slow


def test_teacher_student_and_control_run_and_are_compared(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    save_tiny_bert_classifier(data_dir / "models" / "tiny-base", layers=4)
    train, evaluation, test = tmp_path / "train.jsonl", tmp_path / "eval.jsonl", tmp_path / "test.jsonl"
    train.write_bytes(jsonl_bytes(sentiment_rows(240, seed=1)))
    evaluation.write_bytes(jsonl_bytes(sentiment_rows(40, seed=2)))
    test.write_bytes(jsonl_bytes(sentiment_rows(80, seed=4)))
    transfer = tmp_path / "transfer.jsonl"
    transfer.write_bytes(jsonl_bytes([{"text": row["text"]} for row in sentiment_rows(80, seed=3)]))
    recipe = Recipe(
        student_layers=[0, 2],
        teacher_epochs=2,
        student_epochs=2,
        distilled_epochs=1,
        teacher_learning_rate=2e-3,
        student_learning_rate=2e-3,
        batch_size=16,
        max_length=16,
    )
    output = Console(record=True, width=120)

    with embedded_service(data_dir, port=free_port(), log_path=tmp_path / "service.log") as client:
        summary = run_comparison(
            client,
            base_model="tiny-base",
            data=upload(client, train, evaluation, test, transfer),
            recipe=recipe,
            downloads=tmp_path / "students",
            console=output,
            extra_seeds=[1],
        )
        jobs = {name: client.get_job(job_id) for name, job_id in summary["jobs"].items()}

    teacher, student, control = (
        summary["rows"][name] for name in ("teacher", "distilled student", "control student")
    )
    assert student["parameters"]["without_embeddings"] < teacher["parameters"]["without_embeddings"]
    assert student["parameters"]["without_embeddings"] == control["parameters"]["without_embeddings"]
    # Reported on the held-out test split: the eval split chose each job's kept epoch.
    assert summary["split"] == "test"
    assert summary["retention"] == pytest.approx(student["test"]["accuracy"] / teacher["test"]["accuracy"])
    gain = 100 * (student["test"]["accuracy"] - control["test"]["accuracy"])
    assert summary["gain_over_control_points"] == pytest.approx(gain)
    # A second seed trains another distilled student and control from the same teacher.
    seeds = summary["seeds"]
    assert [run["seed"] for run in seeds["runs"]] == [0, 1]
    assert seeds["runs"][0]["gain_points"] == pytest.approx(gain)
    assert seeds["gain_mean_points"] == pytest.approx(sum(run["gain_points"] for run in seeds["runs"]) / 2)
    assert "gain over 2 seeds" in format_table(summary)
    assert summary["speedup"] > 0 and all(seconds > 0 for seconds in summary["seconds"].values())
    # The distilled student learns from the finished teacher job; the control never sees a teacher.
    assert jobs["distilled"]["spec"]["teacher"]["job"] == summary["jobs"]["teacher"]
    assert jobs["control"]["spec"]["teacher"] is None
    # Only the distilled student reads the unlabeled transfer set, which the teacher labels for it.
    assert jobs["distilled"]["spec"]["data"]["transfer_file"] is not None
    assert jobs["control"]["spec"]["data"]["transfer_file"] is None
    assert jobs["distilled"]["result"]["training"]["train_examples"] == 240 + 80
    assert all(job["result"]["training"]["test_examples"] == 80 for job in jobs.values())
    from transformers import AutoModelForSequenceClassification

    for name, layers in (("teacher", 4), ("distilled", 2), ("control", 2)):
        model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "students" / name / "student")
        assert model.config.num_hidden_layers == layers
    table = format_table(summary)
    assert "distilled student" in table and "retention" in table
    assert "succeeded" in output.export_text()
    json.dumps(summary)
