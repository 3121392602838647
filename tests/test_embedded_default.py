"""With no configuration, `distillery up` runs a job on SQLite and a serverless broker."""

import socket
from pathlib import Path

import pytest
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows

from bench.service import embedded_service

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_embedded_default_runs_a_job_and_serves_its_student(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    save_tiny_bert_classifier(data_dir / "models" / "tiny-teacher")
    dataset = tmp_path / "sentiment.jsonl"
    dataset.write_bytes(jsonl_bytes(sentiment_rows(96)))

    with embedded_service(data_dir, port=free_port(), log_path=tmp_path / "service.log") as client:
        file = client.upload_file(dataset)
        job = client.create_job(
            {
                "teacher": {"path": "tiny-teacher"},
                "student": {"init": "teacher_layers", "layers": [1]},
                "data": {"train_file": file["id"], "max_length": 16},
                "method": {"type": "response"},
                "training": {"epochs": 1, "batch_size": 16},
            }
        )
        done = client.wait(job["id"], poll=1.0, timeout=600)
        student = client.download_student(job["id"], tmp_path / "student")

    assert done["status"] == "succeeded", done["error"]
    assert (data_dir / "distillery.db").is_file() and (data_dir / "broker.db").is_file()
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(student).config.num_hidden_layers == 1
