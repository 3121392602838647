"""The ray executor's overhead: from a job's submission to its first optimiser step, ray against local.

Real servers and processes: a Postgres database, a throwaway `redis-server`, the API, a one-node Ray head
with two CPUs (`bench/service/ray_head.py`) and one Celery worker at a time, first on the local executor
(a torchrun group of two CPU processes), then on the ray executor (a Ray job whose Ray Train workers are
the two ranks). Each run posts the same tiny job: a one-layer BERT taught on two CPU processes, a few
steps. The database says when the job was claimed and when it ended; its progress column, written by
rank 0's heartbeat (every 0.25 s here) and polled every 0.05 s, says when the first step was done.
Writes `bench/results/ray_overhead.json` with the CPU model and the machine's load.

    python -m bench.speed.ray_overhead              # 2 runs of each executor
    python -m bench.speed.ray_overhead --runs 3 --steps 20
"""

import argparse
import logging
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from bench.paths import RESULTS, ROOT
from bench.result_file import uptime, write_result
from bench.service.local_servers import RedisServer, free_port, scratch_database
from bench.service.processes import ServiceProcess, save_tiny_classifier, service_env, wait_ready
from bench.service.queue_hygiene import cpu_model, dataset
from bench.service.ray_head import ray_head
from worker.cli import worker_arguments

HEARTBEAT_SECONDS = "0.25"
POLL_SECONDS = 0.05
EXECUTORS = ("local", "ray")
logger = logging.getLogger(__name__)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2, help="jobs per executor")
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps of each job")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, default=RESULTS / "ray_overhead.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="distillery-ray-bench-") as scratch:
        runs = benchmark(args, Path(scratch))
    result = {
        "command": f"python -m bench.speed.ray_overhead --runs {args.runs} --steps {args.steps}",
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "load": uptime(),
        "job": "one-layer BERT (hidden 16), response KD, 2 CPU processes (gloo), batch 8",
        "heartbeat_seconds": float(HEARTBEAT_SECONDS),
        "runs": runs,
        "median": medians(runs),
    }
    print_table(result)
    write_result(result, args.out)


def benchmark(args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    """Start the servers, then run the job `--runs` times on each executor in turn."""
    data_dir = scratch / "var"
    save_tiny_classifier(data_dir / "models" / "tiny")
    broker = RedisServer(scratch)
    broker.start()
    runs: list[dict[str, Any]] = []
    with scratch_database(args.postgres) as database_url, ray_head(cpus=2) as head:
        env = service_env(
            database_url=database_url,
            broker_url=broker.url,
            data_dir=data_dir,
            heartbeat_seconds=HEARTBEAT_SECONDS,
            ray_address=head.address,
        )
        migrate = [sys.executable, "-m", "distillery.cli", "migrate"]
        subprocess.run(migrate, env={**env, "PYTHONPATH": str(ROOT)}, check=True)
        port = free_port()
        api = ServiceProcess(
            ["-m", "distillery.cli", "api", "--port", str(port)], env=env, log_path=scratch / "api.log"
        )
        api.start()
        try:
            wait_ready(f"http://127.0.0.1:{port}", api)
            headers = {"Authorization": "Bearer dk-dev-embedded-only"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", headers=headers, timeout=60) as client:
                file_id = client.post("/files", files={"file": ("rows.jsonl", dataset())}).json()["id"]
                for executor in EXECUTORS:
                    worker = ServiceProcess(
                        worker_command(env["DISTILLERY_QUEUE_NAME"]),
                        env={**env, "DISTILLERY_EXECUTOR": executor},
                        log_path=scratch / f"worker-{executor}.log",
                    )
                    worker.start()
                    try:
                        for _ in range(args.runs):
                            runs.append(
                                one_run(client, database_url, job_spec(file_id, args.steps), executor)
                            )
                    finally:
                        worker.stop(timeout=30)
        finally:
            api.stop(timeout=30)
            broker.stop()
            create_engine(database_url).dispose()
    return runs


def job_spec(file_id: str, steps: int) -> dict[str, Any]:
    """The tiny job on two CPU processes."""
    return {
        "teacher": {"path": "tiny"},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {"train_file": file_id, "max_length": 8},
        "method": {"type": "response"},
        "resources": {"accelerator": "cpu", "devices": 2},
        "training": {"max_steps": steps, "batch_size": 8, "epochs": 100, "eval_every_steps": steps},
    }


def one_run(client: httpx.Client, database_url: str, spec: dict[str, Any], executor: str) -> dict[str, Any]:
    """Post the job, watch its progress in the database, and return its times in seconds."""
    response = client.post("/jobs", json=spec)
    response.raise_for_status()
    job_id = response.json()["id"]
    engine = create_engine(database_url)
    first_step: float | None = None
    while True:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT status, step, extract(epoch FROM now() - created_at), "
                    "extract(epoch FROM started_at - created_at), "
                    "extract(epoch FROM finished_at - created_at) FROM jobs WHERE id = :id"
                ),
                {"id": job_id},
            ).one()
        status, step, since_submit, claimed, ended = row
        if first_step is None and step and step > 0:
            first_step = float(since_submit)
        if status in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(POLL_SECONDS)
    engine.dispose()
    logger.info("%s: job %s %s, first step after %.1f s", executor, job_id, status, first_step or -1)
    return {
        "executor": executor,
        "status": status,
        "claimed_s": round(float(claimed), 2),
        "first_step_s": round(first_step, 2) if first_step is not None else None,
        "total_s": round(float(ended), 2),
    }


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each executor's median times, and ray's overhead over local to the first step."""
    result: dict[str, dict[str, float]] = {}
    for executor in EXECUTORS:
        mine = [run for run in runs if run["executor"] == executor and run["first_step_s"] is not None]
        if mine:
            result[executor] = {
                key: round(statistics.median(run[key] for run in mine), 2)
                for key in ("claimed_s", "first_step_s", "total_s")
            }
    if len(result) == len(EXECUTORS):
        result["ray_minus_local"] = {
            key: round(result["ray"][key] - result["local"][key], 2) for key in ("first_step_s", "total_s")
        }
    return result


def worker_command(queue: str) -> list[str]:
    arguments = worker_arguments(
        pool="prefork", concurrency=1, queue=f"{queue},{queue}.cpu", hostname="bench@%h"
    )
    return ["-m", "celery", "-A", "worker", *arguments]


def print_table(result: dict[str, Any]) -> None:
    table = Table(title=f"Submit to first step, local vs ray executor ({result['cpu']})")
    for column in ("executor", "status", "claimed (s)", "first step (s)", "total (s)"):
        table.add_column(column)
    for run in result["runs"]:
        table.add_row(
            run["executor"],
            run["status"],
            str(run["claimed_s"]),
            str(run["first_step_s"]),
            str(run["total_s"]),
        )
    console = Console()
    console.print(table)
    console.print(f"medians: {result['median']}")


if __name__ == "__main__":
    main()
