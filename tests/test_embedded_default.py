"""With no configuration, `distillery up` runs a job on SQLite and a serverless broker, with webhooks
and a live event stream."""

from pathlib import Path

import pytest
from local_ports import free_port
from standardwebhooks.webhooks import Webhook
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows
from webhook_receiver import running_receiver

from app.cli.quickstart.service import embedded_service

pytestmark = pytest.mark.slow


def processes_serving(data_dir: Path) -> list[int]:
    """Live processes started for this data directory (read from /proc: Linux only)."""
    marker = f"DISTILLERY_DATA_DIR={data_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environment:
            pids.append(int(entry.name))
    return pids


def test_the_embedded_default_runs_a_job_and_serves_its_student(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    save_tiny_bert_classifier(data_dir / "models" / "tiny-teacher")
    dataset = tmp_path / "sentiment.jsonl"
    dataset.write_bytes(jsonl_bytes(sentiment_rows(96)))

    # Only the receiver's loopback address needs allowing; everything else is the default.
    allow_loopback = {"DISTILLERY_WEBHOOK_ALLOW_HTTP": "1", "DISTILLERY_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "1"}
    with (
        running_receiver() as receiver,
        embedded_service(
            data_dir, port=free_port(), log_path=tmp_path / "service.log", settings=allow_loopback
        ) as client,
    ):
        webhook = client.create_webhook(f"{receiver.url}/hook", events=["job.succeeded"])
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
        # SQLite notifies nothing: the live stream polls, and still sees every event, in order, to the end.
        streamed = list(client.stream_events(job["id"]))
        done = client.wait(job["id"], poll=1.0, timeout=600)
        student = client.download_student(job["id"], tmp_path / "student")
        request = receiver.wait_for("/hook", 1, timeout=60)[0]
        delivered = Webhook(webhook["secret"]).verify(request.body, request.headers)
        assert delivered["type"] == "job.succeeded" and delivered["data"]["job_id"] == job["id"]
        assert len(processes_serving(data_dir)) >= 3  # the API, its worker and its webhook worker

    # Stopping the service stops its workers too: none is left polling the broker.
    assert processes_serving(data_dir) == []

    assert done["status"] == "succeeded", done["error"]
    assert [event["id"] for event in streamed] == list(range(1, len(streamed) + 1))
    assert streamed[-1]["type"] == "status" and streamed[-1]["data"]["status"] == "succeeded"
    assert (data_dir / "distillery.db").is_file() and (data_dir / "broker.db").is_file()
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(student).config.num_hidden_layers == 1
