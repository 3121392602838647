"""The events table's size per job, from real jobs, extrapolated to 1M jobs; and how fast pruning deletes it.

Real servers and processes: a scratch Postgres database, a throwaway `redis-server`, the API and one Celery
worker run from this source tree. A few real jobs run to the end (a one-layer, 16-wide BERT teacher, its
student trained for `--steps` optimiser steps with an evaluation each epoch, each job in a fresh process
as always). Their rows (jobs and events) are then copied with SQL until `--copies` jobs exist, so that
the tables' sizes (`pg_total_relation_size`: heap, TOAST and indexes) are many pages, not one, and
divided by the jobs. Last, every copy is marked ended 100 days ago and `prune_events` (the reconciler's
pass with DISTILLERY_EVENTS_RETENTION_DAYS=30) is timed until nothing is left to delete; then, with the
jobs copied to `--idle-jobs` (a tenth of them ended yesterday, with events), a pass that finds nothing.
Writes `bench/results/events_size.json`.

    python -m bench.service.events_size                     # 3 real jobs of 60 steps, 3,000 jobs in all
    python -m bench.service.events_size --jobs 3 --steps 60 --copies 3000
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.console import Console
from rich.table import Table

from bench.paths import RESULTS, ROOT
from bench.result_file import uptime, write_result
from bench.service.local_servers import RedisServer, free_port, scratch_database
from bench.service.processes import ServiceProcess, save_tiny_classifier, service_env, wait_ready
from bench.service.queue_at_scale import DEV_KEY_HEADERS, cpu_model, plain_url
from bench.service.queue_hygiene import worker_command

EXTRAPOLATED_JOBS = 1_000_000
TABLES = ("jobs", "job_events", "checkpoints", "artifacts")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=3, help="real jobs run to the end")
    parser.add_argument("--steps", type=int, default=60, help="optimiser steps of each real job")
    parser.add_argument("--copies", type=int, default=3000, help="jobs in all once the real ones are copied")
    parser.add_argument(
        "--idle-jobs", type=int, default=100_000, help="jobs when a pass that finds nothing is timed"
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, default=RESULTS / "events_size.json")
    args = parser.parse_args()
    load_before = uptime()
    with tempfile.TemporaryDirectory(prefix="distillery-events-size-") as scratch:
        result = benchmark(args, Path(scratch))
    result["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    result["load"] = {"before": load_before, "after": uptime()}
    result["command"] = (
        f"python -m bench.service.events_size --jobs {args.jobs} --steps {args.steps} --copies {args.copies}"
        f" --idle-jobs {args.idle_jobs}"
    )
    print_table(result)
    write_result(result, args.out)


def benchmark(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Run the real jobs, measure what they stored, copy them, measure the tables, time the pruning."""
    data_dir = scratch / "var"
    save_tiny_classifier(data_dir / "models" / "tiny")
    broker = RedisServer(scratch)
    broker.start()
    try:
        with scratch_database(args.postgres) as database_url:
            env = service_env(database_url=database_url, broker_url=broker.url, data_dir=data_dir)
            os.environ.update(env)  # this process prunes as a worker's reconciler does
            run = [sys.executable, "-m", "distillery.cli", "migrate"]
            subprocess.run(run, env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, check=True)
            started = time.monotonic()
            run_real_jobs(args, env, scratch)
            result: dict[str, Any] = {"real_jobs_seconds": round(time.monotonic() - started, 1)}
            result["real_jobs"] = per_job_rows(database_url)
            copy_jobs(database_url, total=args.copies)
            result["tables"] = table_sizes(database_url)
            result["pruning"] = time_pruning(database_url)
            result["idle_pass"] = time_idle_pass(database_url, jobs=args.idle_jobs)
            return result
    finally:
        broker.stop()


def run_real_jobs(args: argparse.Namespace, env: dict[str, str], scratch: Path) -> None:
    """Post the jobs to the API, run them on one worker, wait until every one succeeded."""
    port = free_port()
    api = ServiceProcess(
        ["-m", "distillery.cli", "api", "--port", str(port)], env=env, log_path=scratch / "api.log"
    )
    worker = ServiceProcess(
        worker_command(env["DISTILLERY_QUEUE_NAME"], 0), env=env, log_path=scratch / "worker.log"
    )
    api.start()
    worker.start()
    try:
        wait_ready(f"http://127.0.0.1:{port}", api)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/v1", headers=DEV_KEY_HEADERS, timeout=60
        ) as client:
            file = client.post("/files", files={"file": ("rows.jsonl", reviews())}).json()
            spec = {
                "teacher": {"path": "tiny"},
                "student": {"init": "teacher_layers", "layers": [0]},
                "data": {"train_file": file["id"], "max_length": 8, "eval_fraction": 0.25},
                "method": {"type": "response"},
                "training": {"max_steps": args.steps, "batch_size": 4, "epochs": 100},
            }
            ids = [client.post("/jobs", json=spec).raise_for_status().json()["id"] for _ in range(args.jobs)]
            wait_succeeded(client, ids, timeout=120 + 60 * args.jobs)
    finally:
        worker.stop(timeout=30)
        api.stop(timeout=30)


def reviews(count: int = 80) -> bytes:
    """Labelled rows in the tiny teacher's words: with 60 steps of 4 rows, four epochs as a real job has."""
    words = [("good", "positive"), ("bad", "negative")]
    rows = [{"text": f"the movie was {words[i % 2][0]}", "label": words[i % 2][1]} for i in range(count)]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def wait_succeeded(client: httpx.Client, ids: list[str], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        statuses = [client.get(f"/jobs/{job_id}").json()["status"] for job_id in ids]
        if all(status == "succeeded" for status in statuses):
            return
        if any(status in ("failed", "cancelled") for status in statuses) or time.monotonic() > deadline:
            raise RuntimeError(f"the real jobs did not all succeed: {statuses}")
        time.sleep(1)


def per_job_rows(database_url: str) -> dict[str, Any]:
    """Each real job's events and their bytes as stored rows; the events of all of them by type."""
    with psycopg.connect(plain_url(database_url)) as connection:
        jobs = connection.execute(
            "SELECT j.id, j.total_steps, count(e.id), coalesce(sum(pg_column_size(e.*)), 0)"
            " FROM jobs j LEFT JOIN job_events e ON e.job_id = j.id GROUP BY j.id, j.total_steps"
        ).fetchall()
        types = connection.execute(
            "SELECT type, count(*) FROM job_events GROUP BY type ORDER BY 2 DESC"
        ).fetchall()
    return {
        "jobs": [
            {"job": job_id, "total_steps": steps, "events": events, "row_bytes": int(size)}
            for job_id, steps, events, size in jobs
        ],
        "events_by_type": dict(types),
    }


def copy_jobs(database_url: str, *, total: int) -> None:
    """Copy the real jobs, with their events, checkpoints' and artifacts' rows, until `total` jobs exist."""
    with psycopg.connect(plain_url(database_url), autocommit=True) as connection:
        real = [row[0] for row in connection.execute("SELECT id FROM jobs").fetchall()]
        rounds = max(0, total // len(real) - 1)
        connection.execute(
            "CREATE TEMP TABLE copies AS SELECT j.id AS source, j.id || '_' || g AS id"
            " FROM jobs j, generate_series(1, %(rounds)s) AS g",
            {"rounds": rounds},
        )
        for table, key in (
            ("jobs", "id"),
            ("job_events", "job_id"),
            ("checkpoints", "job_id"),
            ("artifacts", "job_id"),
        ):
            connection.execute(copy_statement(connection, table, key))
        connection.execute("ANALYZE")


def copy_statement(connection: psycopg.Connection[Any], table: str, key: str) -> str:
    """INSERT ... SELECT of `table`'s rows for every copy, with the copy's job id and fresh keys."""
    columns = [
        row[0]
        for row in connection.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        ).fetchall()
    ]
    renamed = {key: "c.id"}
    if table != "jobs":
        columns.remove("id")  # serial or generated ids: a fresh one per copied row
        if table in ("checkpoints", "artifacts"):
            renamed["id"] = "left(t.id, 24) || substr(md5(t.id || c.id), 1, 16)"
            columns.insert(0, "id")
    else:
        renamed["idempotency_key"] = "NULL"
    values = ", ".join(renamed.get(column, f"t.{column}") for column in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values}"
        f" FROM {table} t JOIN copies c ON t.{key} = c.source"
    )


def table_sizes(database_url: str) -> dict[str, Any]:
    """Rows and bytes (heap, TOAST, indexes) of each table, per job and for 1M jobs."""
    with psycopg.connect(plain_url(database_url)) as connection:
        jobs = connection.execute("SELECT count(*) FROM jobs").fetchone()[0]  # type: ignore[index]
        sizes = {}
        for table in TABLES:
            rows, size = connection.execute(
                f"SELECT (SELECT count(*) FROM {table}), pg_total_relation_size('{table}')"  # noqa: S608
            ).fetchone()  # type: ignore[misc]
            sizes[table] = {
                "rows": rows,
                "bytes": size,
                "rows_per_job": round(rows / jobs, 2),
                "bytes_per_job": round(size / jobs),
                "gib_at_1m_jobs": round(size / jobs * EXTRAPOLATED_JOBS / 1024**3, 2),
            }
    return {"jobs": jobs, "tables": sizes}


def time_pruning(database_url: str) -> dict[str, Any]:
    """Mark every job ended 100 days ago; time the reconciler's pruning passes at a 30-day retention."""
    from app.core.config import get_settings
    from app.jobs.lifecycle import prune_events

    with psycopg.connect(plain_url(database_url), autocommit=True) as connection:
        connection.execute("UPDATE jobs SET finished_at = now() - interval '100 days'")
    settings = get_settings().model_copy(update={"events_retention_days": 30})
    passes, deleted, started = 0, 0, time.perf_counter()
    while pruned := prune_events(settings=settings):
        passes, deleted = passes + 1, deleted + pruned
    seconds = time.perf_counter() - started
    return {
        "passes": passes,
        "events_deleted": deleted,
        "seconds": round(seconds, 2),
        "events_per_second": round(deleted / seconds) if seconds else None,
        "seconds_per_pass": round(seconds / passes, 3) if passes else None,
    }


def time_idle_pass(database_url: str, *, jobs: int) -> dict[str, Any]:
    """A pass that finds nothing to prune, with `jobs` jobs: 90% ended 100 days ago and already pruned,
    10% ended yesterday with 43 metrics events each, as a real job writes."""
    from app.core.config import get_settings
    from app.jobs.lifecycle import prune_events
    from bench.service.queue_at_scale import fill_queue

    with psycopg.connect(plain_url(database_url), autocommit=True) as connection:
        template = connection.execute("SELECT id FROM jobs LIMIT 1").fetchone()[0]  # type: ignore[index]
        connection.execute("UPDATE jobs SET status = 'queued'")  # fill_queue counts queued jobs
    fill_queue(database_url, template=template, size=jobs)
    with psycopg.connect(plain_url(database_url), autocommit=True) as connection:
        connection.execute("UPDATE jobs SET status = 'succeeded', finished_at = now() - interval '100 days'")
        connection.execute("UPDATE jobs SET finished_at = now() - interval '1 day' WHERE random() < 0.1")
        connection.execute(
            "INSERT INTO job_events (job_id, seq, created_at, level, type, message, data)"
            " SELECT j.id, g, now(), 'info', 'metrics', 'loss 0.1234',"
            " jsonb_build_object('split', 'train', 'step', g, 'metrics', jsonb_build_object('loss', 0.1234))"
            " FROM jobs j, generate_series(1, 43) AS g WHERE j.finished_at > now() - interval '2 days'"
        )
        connection.execute("VACUUM ANALYZE")
        events = connection.execute("SELECT count(*) FROM job_events").fetchone()[0]  # type: ignore[index]
    settings = get_settings().model_copy(update={"events_retention_days": 30})
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        assert prune_events(settings=settings) == 0
        seconds.append(time.perf_counter() - started)
    return {"jobs": jobs, "events": events, "ms": [round(value * 1000, 1) for value in seconds]}


def print_table(result: dict[str, Any]) -> None:
    table = Table(title=f"Stored rows per job ({result['tables']['jobs']} jobs)")
    for column in ("table", "rows per job", "bytes per job", "GiB at 1M jobs"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, size in result["tables"]["tables"].items():
        table.add_row(
            name, f"{size['rows_per_job']:.1f}", str(size["bytes_per_job"]), f"{size['gib_at_1m_jobs']:.2f}"
        )
    console = Console(width=120)
    console.print(table)
    console.print("real jobs:", json.dumps(result["real_jobs"]))
    console.print("pruning:", json.dumps(result["pruning"]))
    console.print("a pass that finds nothing:", json.dumps(result["idle_pass"]))


if __name__ == "__main__":
    main()
