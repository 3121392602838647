"""Queue hygiene under a backlog: deliveries per job and a fresh job's wait, across worker and broker restart.

Real servers and processes: a Postgres database, a throwaway `redis-server` without persistence, the API
and two Celery workers (each with its reconciler), all run from this source tree. The benchmark posts a
backlog of jobs, cancels most of them while they are queued (their messages stay on the queue: stale
deliveries), lets the rest run (one optimiser step of a one-layer model each, in a fresh process as every
real job), restarts a worker when a third of them ended, and restarts the broker when two thirds ended,
which loses every message it held. Reconcile passes are short so that a flooding reconciler would show.
Writes `bench/results/queue_hygiene.json`.

    python -m bench.service.queue_hygiene                       # 200 jobs, 20 of them run
    python -m bench.service.queue_hygiene --jobs 100 --run 10
"""

import argparse
import json
import logging
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine, text

from bench.paths import RESULTS, ROOT
from bench.result_file import write_result
from bench.service.local_servers import RedisServer, free_port, scratch_database
from bench.service.processes import ServiceProcess, save_tiny_classifier, service_env, wait_ready

TERMINAL = ("succeeded", "failed", "cancelled")
SHORT_INTERVALS = {
    "reconcile_seconds": "2",
    "requeue_after_seconds": "20",
    "republish_min_interval_seconds": "5",
    "heartbeat_seconds": "2",
}
logger = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything the benchmark started, and the client that drives the API."""

    api: httpx.Client
    workers: list[ServiceProcess]
    broker: RedisServer
    database_url: str


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200, help="jobs in the backlog")
    parser.add_argument(
        "--run", type=int, default=20, help="jobs of the backlog left to run; the rest are cancelled"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one job at a time each")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    parser.add_argument("--out", type=Path, default=RESULTS / "queue_hygiene.json")
    parser.add_argument(
        "--logs", type=Path, help="keep the logs of the API and the workers in this directory"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not 0 < args.run <= args.jobs:
        parser.error("--run must be between 1 and --jobs")

    with tempfile.TemporaryDirectory(prefix="distillery-queue-bench-") as scratch:
        try:
            result = benchmark(args, Path(scratch))
        finally:
            if args.logs:
                args.logs.mkdir(parents=True, exist_ok=True)
                for log in Path(scratch).glob("*.log"):
                    shutil.copy(log, args.logs / log.name)
    result["command"] = (
        f"python -m bench.service.queue_hygiene --jobs {args.jobs} --run {args.run} --workers {args.workers}"
    )
    print_table(result)
    write_result(result, args.out)


def benchmark(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Start the service, drive the scenario, and read the outcome from the database."""
    data_dir = scratch / "var"
    save_tiny_classifier(data_dir / "models" / "tiny")
    broker = RedisServer(scratch)
    broker.start()
    with scratch_database(args.postgres) as database_url:
        env = service_env(
            database_url=database_url, broker_url=broker.url, data_dir=data_dir, **SHORT_INTERVALS
        )
        subprocess.run([*python_module("distillery.cli"), "migrate"], env=env_with_path(env), check=True)
        port = free_port()
        api = ServiceProcess(
            ["-m", "distillery.cli", "api", "--port", str(port)], env=env, log_path=scratch / "api.log"
        )
        workers = [
            ServiceProcess(
                worker_command(env["DISTILLERY_QUEUE_NAME"], index),
                env=env,
                log_path=scratch / f"w{index}.log",
            )
            for index in range(args.workers)
        ]
        api.start()
        try:
            wait_ready(f"http://127.0.0.1:{port}", api)
            headers = {"Authorization": "Bearer dk-dev-embedded-only"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", headers=headers, timeout=60) as client:
                run = Run(api=client, workers=workers, broker=broker, database_url=database_url)
                return scenario(run, args)
        finally:
            for process in [*workers, api]:
                process.stop(timeout=30)
            broker.stop()
            create_engine(database_url).dispose()


def scenario(run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """Backlog, cancellations, probes, a worker restart, a broker restart; returns the measurements."""
    file = run.api.post("/files", files={"file": ("rows.jsonl", dataset())}).json()
    spec = {
        "teacher": {"path": "tiny"},
        "student": {"init": "teacher_layers", "layers": [0]},
        "data": {"train_file": file["id"], "max_length": 8},
        "method": {"type": "response"},
        "training": {"max_steps": 1, "batch_size": 8, "epochs": 1},
    }
    started = time.monotonic()
    backlog = [post_job(run.api, spec) for _ in range(args.jobs)]
    keep_every = args.jobs / args.run
    kept = {backlog[round(i * keep_every)] for i in range(args.run)}
    for job_id in backlog:
        if job_id not in kept:
            assert run.api.post(f"/jobs/{job_id}/cancel").status_code == 200
    probes = {"behind the whole backlog": post_job(run.api, spec)}
    logger.info(
        "posted %d jobs (%d cancelled while queued) and a probe", len(backlog), len(backlog) - len(kept)
    )
    for worker in run.workers:
        worker.start()
    to_run = len(kept) + 1
    events: dict[str, float] = {}
    wait_until_finished(run, to_run // 3, timeout=args.timeout)
    events["worker restart"] = time.monotonic() - started
    logger.info("restarting a worker")
    run.workers[0].stop()
    run.workers[0].start()
    wait_until_finished(run, 2 * to_run // 3, timeout=args.timeout)
    probes["just before the broker restart"] = post_job(run.api, spec)
    time.sleep(0.5)
    events["broker restart"] = time.monotonic() - started
    run.broker.restart()
    logger.info("restarted the broker")
    wait_until_finished(run, to_run + 1, timeout=args.timeout)
    elapsed = time.monotonic() - started
    time.sleep(3)  # deliveries of cancelled jobs still on the queue are counted too
    return measurements(run, backlog=backlog, probes=probes, events=events, elapsed=elapsed)


def wait_until_finished(run: Run, count: int, *, timeout: float) -> None:
    """Block until `count` jobs have succeeded or failed (not counting cancellations)."""
    engine = create_engine(run.database_url)
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as connection:
            done = connection.scalar(
                text("SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'failed')")
            )
        if (done or 0) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {count} jobs ended in {timeout:.0f}s")
        time.sleep(0.5)


def measurements(
    run: Run, *, backlog: list[str], probes: dict[str, str], events: dict[str, float], elapsed: float
) -> dict[str, Any]:
    """Deliveries, re-sends and waits of every job, read from the database."""
    engine = create_engine(run.database_url)
    with engine.connect() as connection:
        rows = (
            connection.execute(
                text(
                    "SELECT id, status, deliveries, attempts, "
                    "extract(epoch FROM started_at - created_at) AS wait, "
                    "extract(epoch FROM finished_at - started_at) AS run, "
                    "created_at, started_at, finished_at, "
                    "(SELECT count(*) FROM job_events AS e"
                    " WHERE e.job_id = jobs.id AND e.message LIKE 're-sent%') AS resent FROM jobs"
                )
            )
            .mappings()
            .all()
        )
    jobs = {row["id"]: row for row in rows}
    deliveries = [row["deliveries"] for row in rows]
    ran = [row for row in rows if row["status"] in ("succeeded", "failed")]
    return {
        "jobs": len(rows),
        "backlog": len(backlog),
        "ran": len(ran),
        "succeeded": sum(row["status"] == "succeeded" for row in rows),
        "cancelled_while_queued": sum(row["status"] == "cancelled" for row in rows),
        "deliveries_per_job_mean": round(statistics.mean(deliveries), 3),
        "deliveries_per_job_max": max(deliveries),
        "deliveries_histogram": {str(n): deliveries.count(n) for n in sorted(set(deliveries))},
        "deliveries_per_run_job_mean": round(statistics.mean(row["deliveries"] for row in ran), 3),
        "attempts_max": max(row["attempts"] for row in rows),
        "resent_jobs": sum(row["resent"] > 0 for row in rows),
        "resent_messages": sum(row["resent"] for row in rows),
        "run_seconds_median": round(statistics.median(float(row["run"]) for row in ran), 2),
        "probe_waits_seconds": {
            name: round(float(jobs[job_id]["wait"]), 1) for name, job_id in probes.items()
        },
        # The workers' time spent running jobs while each probe waited: its wait without any overhead.
        "probe_work_ahead_seconds": {
            name: round(work_ahead(ran, jobs[job_id], workers=len(run.workers)), 1)
            for name, job_id in probes.items()
        },
        "largest_probe_wait_seconds": round(
            max(float(jobs[job_id]["wait"]) for job_id in probes.values()), 1
        ),
        "events_at_seconds": {name: round(at, 1) for name, at in events.items()},
        "elapsed_seconds": round(elapsed, 1),
        "settings": {f"DISTILLERY_{key.upper()}": value for key, value in SHORT_INTERVALS.items()},
        "cpu": cpu_model(),
        "python": platform.python_version(),
    }


def work_ahead(ran: list[Any], probe: Any, *, workers: int) -> float:
    """Seconds the workers spent running other jobs while the probe waited, divided among the workers."""
    busy = 0.0
    for row in ran:
        overlap = min(row["finished_at"], probe["started_at"]) - max(row["started_at"], probe["created_at"])
        busy += max(overlap.total_seconds(), 0.0) if row["id"] != probe["id"] else 0.0
    return busy / workers


def print_table(result: dict[str, Any]) -> None:
    table = Table(title="Queue hygiene")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("jobs (backlog + probes)", result["jobs"]),
        ("ran (one optimiser step each, fresh process)", result["ran"]),
        ("cancelled while queued (stale deliveries)", result["cancelled_while_queued"]),
        ("deliveries per job, mean", result["deliveries_per_job_mean"]),
        ("deliveries per job, max", result["deliveries_per_job_max"]),
        ("deliveries per job that ran, mean", result["deliveries_per_run_job_mean"]),
        ("jobs re-sent by a reconciler", result["resent_jobs"]),
        ("messages re-sent", result["resent_messages"]),
        ("median run of a job (s)", result["run_seconds_median"]),
        *(
            (f"wait of the probe posted {name} (s)", f"{wait} ({result['probe_work_ahead_seconds'][name]})")
            for name, wait in result["probe_waits_seconds"].items()
        ),
        ("elapsed (s)", result["elapsed_seconds"]),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    Console().print(table)
    Console().print(
        "In brackets: time the workers spent running other jobs while the probe waited, per worker.\n"
        f"CPU: {result['cpu']}; deliveries histogram: {result['deliveries_histogram']}"
    )


def post_job(client: httpx.Client, spec: dict[str, Any]) -> str:
    response = client.post("/jobs", json=spec)
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


def dataset() -> bytes:
    rows = [
        {"text": f"the movie was {word}", "label": label}
        for word, label in [("good", "positive"), ("bad", "negative")]
    ]
    return "".join(json.dumps(row) + "\n" for row in rows * 8).encode()


def worker_command(queue: str, index: int) -> list[str]:
    return [
        "-m", "celery", "-A", "worker", "worker", "--pool=prefork", "--concurrency=1", f"--queues={queue}",
        f"--hostname=bench{index}@%h", "--loglevel=INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def python_module(module: str) -> list[str]:
    import sys

    return [sys.executable, "-m", module]


def env_with_path(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PYTHONPATH": str(ROOT)}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
