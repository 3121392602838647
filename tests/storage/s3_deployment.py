"""An API and Celery workers that share no folder, only the database, the queue and a moto S3 store."""

import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polling import ended, poll
from service_processes import start_worker, stop
from tiny_assets import jsonl_bytes, save_tiny_bert_classifier, sentiment_rows


@dataclass
class S3Deployment:
    """The test's API client on the bucket, and workers started each in a data directory of its own."""

    client: Any
    url: str
    environment: dict[str, str]
    queue_name: str
    tmp_path: Path
    workers: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start_worker(self, name: str, /, **variables: str) -> tuple[subprocess.Popen[bytes], Path]:
        """A Celery worker with its own data directory (and model root) `tmp_path/name`."""
        data_dir = self.tmp_path / name
        (data_dir / "models").mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            **self.environment,
            "DISTILLERY_DATA_DIR": str(data_dir),
            "DISTILLERY_MODEL_ROOTS": json.dumps([str(data_dir / "models")]),
            "DISTILLERY_HEARTBEAT_SECONDS": "1",
            "DISTILLERY_RECONCILE_SECONDS": "3600",
            **variables,
        }
        process = start_worker(env, queue_name=self.queue_name, log_path=data_dir / "worker.log")
        self.workers.append((process, data_dir))
        return process, data_dir

    def stop_workers(self) -> None:
        for process, data_dir in self.workers:
            if process.poll() is None and stop(process) not in (0, -15):
                print((data_dir / "worker.log").read_text()[-5000:])

    def upload(self, rows: int = 160) -> str:
        """An uploaded dataset of learnable sentiment rows; returns its id."""
        content = jsonl_bytes(sentiment_rows(rows))
        response = self.client.post("/v1/files", files={"file": ("sentiment.jsonl", content)})
        assert response.status_code == 201, response.text
        file_id: str = response.json()["id"]
        return file_id

    def create_job(self, spec: dict[str, Any]) -> str:
        response = self.client.post("/v1/jobs", json=spec)
        assert response.status_code == 201, response.text
        job_id: str = response.json()["id"]
        return job_id

    def wait_for(
        self, job_id: str, until: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 120
    ) -> dict[str, Any]:
        """Poll a job until `until(job)` holds (default: a terminal status); returns the job."""

        def failure(job: dict[str, Any]) -> str:
            logs = "\n".join(path.joinpath("worker.log").read_text()[-3000:] for _, path in self.workers)
            return f"job {job_id} still {job['status']} after {timeout}s\n{logs}"

        return poll(
            lambda: self.client.get(f"/v1/jobs/{job_id}").json(),
            until or ended,
            timeout=timeout,
            interval=0.2,
            failure=failure,
        )

    def wait_until(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"not true after {timeout}s"
            time.sleep(0.2)

    def events(self, job_id: str) -> list[str]:
        """The messages of the job's log."""
        page = self.client.get(f"/v1/jobs/{job_id}/events", params={"limit": 1000}).json()
        return [f"{event['created_at']} {event['message']}" for event in page["data"]]

    def student(self, job_id: str, destination: Path) -> Path:
        """Download the job's student.tar.gz through the API and unpack it; returns the student folder."""
        response = self.client.get(f"/v1/jobs/{job_id}/artifacts/student.tar.gz")
        assert response.status_code == 200, response.text
        with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
            archive.extractall(destination, filter="data")
        return destination / "student"


def save_teacher(*roots: Path) -> str:
    """The tiny BERT teacher saved once, copied under each model root; returns its reference."""
    first = save_tiny_bert_classifier(roots[0] / "tiny-teacher")
    for root in roots[1:]:
        shutil.copytree(first, root / "tiny-teacher", dirs_exist_ok=True)
    return "tiny-teacher"


def store_teacher(url: str, settings: Any, scratch: Path) -> str:
    """The tiny BERT teacher uploaded under the s3:// model root `url`; returns its reference."""
    from app.core.storage import store_at

    store_at(url, settings).put_tree("tiny-teacher", save_tiny_bert_classifier(scratch / "tiny-teacher"))
    return "tiny-teacher"


def distill_spec(teacher: dict[str, str], train_file: str, **training: Any) -> dict[str, Any]:
    """Response KD from the tiny teacher into a one-layer student copied from it."""
    return {
        "teacher": teacher,
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {"train_file": train_file, "max_length": 16},
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "training": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "warmup_ratio": 0.0, **training},
    }


def deployment(
    *, s3_server: Any, make_client: Callable[..., Any], settings: Any, tmp_path: Path, monkeypatch: Any
) -> Iterator[S3Deployment]:
    """A deployment on a fresh bucket; this process reaches moto through the AWS_* variables."""
    url = f"s3://{s3_server.new_bucket()}/distillery"
    environment = s3_server.environment(url)
    for name, value in environment.items():
        if name != "DISTILLERY_STORAGE_URL":
            monkeypatch.setenv(name, value)
    client = make_client(api_key=settings.dev_api_key, storage_url=url)
    running = S3Deployment(client, url, environment, settings.queue_name, tmp_path)
    try:
        yield running
    finally:
        running.stop_workers()
