"""The queue at scale: the scheduler's claim and the job list with 1,000, 10,000 and 100,000 queued jobs.

Real servers: a scratch Postgres database, a throwaway `redis-server` as the broker, the API served by
uvicorn (`distillery api`'s way). One job is created through the API from `distillery/examples/
response.yaml`; the backlog is that row copied with SQL, each copy queued a second earlier, all of one
tenant (the list's worst case). Then, at each backlog size, `claim_next` (app/jobs/lifecycle/claiming.py)
is called in this process as a worker's pool process calls it, each claim taking one device of a
registered worker, and the list is read over HTTP one request at a time. Claims are serialised across
every worker (one advisory lock), so 1 / claim time bounds the starts per second of the whole cluster.
Writes `bench/results/queue_at_scale.json`.

    python -m bench.service.queue_at_scale          # 1k, 10k, then 100k queued; 30 claims, 50 lists
    python -m bench.service.queue_at_scale --sizes 1000 10000 100000 --claims 30 --lists 50
"""

import argparse
import os
import platform
import statistics
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
from bench.service.processes import ServiceProcess, service_env, wait_ready

DEV_KEY_HEADERS = {"Authorization": "Bearer dk-dev-embedded-only"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="queued jobs, in turn"
    )
    parser.add_argument("--claims", type=int, default=30, help="claims timed at each size")
    parser.add_argument("--lists", type=int, default=50, help="requests of each list case at each size")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, default=RESULTS / "queue_at_scale.json")
    args = parser.parse_args()
    load_before = uptime()
    with tempfile.TemporaryDirectory(prefix="distillery-queue-scale-") as scratch:
        cases = benchmark(args, Path(scratch))
    result = {
        "cases": cases,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "load": {"before": load_before, "after": uptime()},
        "command": "python -m bench.service.queue_at_scale --sizes "
        + " ".join(map(str, args.sizes))
        + f" --claims {args.claims} --lists {args.lists}",
    }
    print_table(cases)
    write_result(result, args.out)


def benchmark(args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    """Start the servers on a fresh database, then time claims and lists at each backlog size."""
    broker = RedisServer(scratch)
    broker.start()
    try:
        with scratch_database(args.postgres) as database_url:
            env = service_env(database_url=database_url, broker_url=broker.url, data_dir=scratch / "var")
            # This process claims as a worker does: its settings, read once at import, are the service's.
            os.environ.update(env)
            run = [sys.executable, "-m", "distillery.cli", "migrate"]
            subprocess.run(run, env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, check=True)
            port = free_port()
            api = ServiceProcess(
                ["-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                log_path=scratch / "api.log",
            )
            api.start()
            try:
                wait_ready(f"http://127.0.0.1:{port}", api)
                return measure_sizes(args, f"http://127.0.0.1:{port}", database_url, scratch / "var")
            finally:
                api.stop(timeout=30)
    finally:
        broker.stop()


def measure_sizes(
    args: argparse.Namespace, api_url: str, database_url: str, data_dir: Path
) -> list[dict[str, Any]]:
    """Grow the backlog to each size in turn; time the claims and the lists there."""
    from bench.service.api_load import first_job

    cases = []
    with httpx.Client(base_url=f"{api_url}/v1", headers=DEV_KEY_HEADERS, timeout=60) as client:
        _, job = first_job(api_url, DEV_KEY_HEADERS, data_dir)
        for size in args.sizes:
            fill_queue(database_url, template=job["id"], size=size)
            # A worker of its own per size, so that each size's claims see the same running jobs.
            node = register_worker(size, devices=args.claims)
            candidates = explain_candidates(database_url)
            claims = time_claims(database_url, args.claims, node=node)
            cases.append(
                {
                    "queued": size,
                    "case": "claim_next (one claim)",
                    **summary(claims),
                    "candidates": candidates,
                }
            )
            for name, params in LIST_CASES.items():
                lists = time_lists(client, params, args.lists)
                cases.append({"queued": queued_count(database_url), "case": name, **summary(lists)})
    return cases


LIST_CASES: dict[str, dict[str, Any]] = {
    "GET /v1/jobs?limit=20": {"limit": 20},
    "GET /v1/jobs?status=queued&limit=20": {"status": "queued", "limit": 20},
}


def register_worker(size: int, *, devices: int) -> str:
    """A live CPU worker in the registry with a device for every timed claim; returns its node name."""
    from app.workers.records import WorkerCapacity
    from app.workers.registry import register

    node = f"bench-{size}@queue-at-scale"
    register(
        node=node,
        capacity=WorkerCapacity(host="bench", accelerator="cpu", devices=devices, concurrency=devices),
    )
    return node


def explain_candidates(database_url: str) -> dict[str, Any]:
    """Postgres's plan and time for the claim's two candidate reads (app/jobs/scheduler_state.py)."""
    from app.jobs.scheduler_state import CANDIDATES_EACH_WAY

    plans = {}
    with psycopg.connect(plain_url(database_url)) as connection:
        for name, order in (
            ("by_priority", "priority_rank DESC, queued_at, id"),
            ("by_age", "queued_at, id"),
        ):
            (plan,) = connection.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id, tenant, priority_rank, queued_at FROM jobs"
                f" WHERE status = 'queued' AND accelerator IN ('auto', 'cpu') ORDER BY {order}"
                f" LIMIT {CANDIDATES_EACH_WAY}"
            ).fetchone()[0]  # type: ignore[index]
            plans[name] = {"ms": round(plan["Execution Time"], 2), "plan": plan_nodes(plan["Plan"])}
    return plans


def plan_nodes(node: dict[str, Any]) -> str:
    """A plan's node types, outermost first: `Limit > Sort > Seq Scan`."""
    names = [node["Node Type"] + (f" ({node['Sort Method']})" if "Sort Method" in node else "")]
    names += [plan_nodes(child) for child in node.get("Plans", [])]
    return " > ".join(names)


def time_claims(database_url: str, count: int, *, node: str) -> list[float]:
    """Seconds of each of `count` claims, made as a worker's pool process makes them: the ticket is the
    oldest queued job's message."""
    from app.core.config import get_settings
    from app.jobs.lifecycle import claim_next

    seconds = []
    for _ in range(count):
        with psycopg.connect(plain_url(database_url)) as connection:
            row = connection.execute(
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY queued_at, id LIMIT 1"
            ).fetchone()
        assert row is not None, "no queued job left to claim"
        started = time.perf_counter()
        claimed = claim_next(node=node, holder=f"bench-{row[0]}", ticket=row[0], settings=get_settings())
        seconds.append(time.perf_counter() - started)
        assert claimed is not None, "the claim found nothing to run"
    return seconds


def time_lists(client: httpx.Client, params: dict[str, Any], count: int) -> list[float]:
    """Seconds of each of `count` list requests, one at a time, as the client sees them."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        client.get("/jobs", params=params).raise_for_status()
        seconds.append(time.perf_counter() - started)
    return seconds


def fill_queue(database_url: str, *, template: str, size: int) -> None:
    """Copy the template job until `size` jobs are queued, each copy queued a second before the last."""
    with psycopg.connect(plain_url(database_url), autocommit=True) as connection:
        missing = size - queued_count(database_url)
        if missing <= 0:
            return
        connection.execute(
            """
            INSERT INTO jobs
            SELECT (jsonb_populate_record(NULL::jobs, to_jsonb(j) || jsonb_build_object(
                'id', 'job_' || substr(md5(random()::text || g::text), 1, 24),
                'queued_at', oldest.t - g * interval '1 second',
                'created_at', oldest.t - g * interval '1 second'))).*
            FROM jobs j, generate_series(1, %(missing)s) AS g,
                 (SELECT min(queued_at) AS t FROM jobs) AS oldest
            WHERE j.id = %(template)s
            """,
            {"missing": missing, "template": template},
        )
        connection.execute("ANALYZE jobs")


def queued_count(database_url: str) -> int:
    with psycopg.connect(plain_url(database_url)) as connection:
        row = connection.execute("SELECT count(*) FROM jobs WHERE status = 'queued'").fetchone()
    return int(row[0]) if row else 0


def summary(seconds: list[float]) -> dict[str, Any]:
    """p50, p95 and max in milliseconds, and the rate one caller at a time reaches."""
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "calls": len(seconds),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "per_second_one_at_a_time": round(1 / statistics.median(ordered), 1),
    }


def plain_url(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def cpu_model() -> str:
    output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def print_table(cases: list[dict[str, Any]]) -> None:
    table = Table(title="The queue at scale")
    columns = (
        "queued",
        "case",
        "calls",
        "p50 ms",
        "p95 ms",
        "max ms",
        "per s, one at a time",
        "candidate reads ms",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "case" else "right")
    for case in cases:
        table.add_row(
            str(case["queued"]),
            case["case"],
            str(case["calls"]),
            f"{case['p50_ms']:.2f}",
            f"{case['p95_ms']:.2f}",
            f"{case['max_ms']:.2f}",
            f"{case['per_second_one_at_a_time']:.1f}",
            candidate_reads(case),
        )
    Console(width=140).print(table)


def candidate_reads(case: dict[str, Any]) -> str:
    """`by priority / by age` in ms, for a claim case."""
    plans = case.get("candidates")
    return f"{plans['by_priority']['ms']:.1f} / {plans['by_age']['ms']:.1f}" if plans else ""


if __name__ == "__main__":
    main()
