"""API load: throughput and p50/p99 latency of reading, listing and creating jobs, against a bare endpoint.

Real servers and processes: a scratch Postgres database, a throwaway `redis-server` as the broker, the API
served by uvicorn in production mode with a real API key, and a bare FastAPI route served the same way as
the reference. `wrk` (a separate process, one thread, keep-alive connections) loads each case for a fixed
time after a warm-up; the server process's CPU time per request is read from /proc, a figure that moves
less than the rate when other work shares the machine. Listing is measured with 1,000 and with 100,000
jobs of the tenant, bulk-inserted with SQL from a spec the API stored. No worker runs: created jobs stay
queued. Writes `bench/results/api_load.json`.

The burst case opens 200 connections at once against the job list for 20 s, as a platform's status
polls after a webhook fan-out do, and records the error rate beside throughput and latency.

    python -m bench.service.api_load                    # 10 s per case, 16 connections
    python -m bench.service.api_load --seconds 5 --connections 8
    python -m bench.service.api_load --only-burst       # the burst case alone
    python -m bench.service.api_load --only-read        # the bare endpoint and the job read alone
    python -m bench.service.api_load --only-read --profile read.json   # and py-spy on the API meanwhile
"""

import argparse
import json
import logging
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from app.auth.service import create_key
from app.core.db import make_engine
from bench.paths import RESULTS, ROOT
from bench.result_file import write_result
from bench.service.api_burst import BURST_CASE, cpu_seconds, run_burst
from bench.service.local_servers import RedisServer, free_port, scratch_database
from bench.service.processes import ServiceProcess, service_env, wait_ready
from bench.service.py_spy import sampling
from bench.service.wrk_load import LoadResult, run_wrk

EXAMPLE_SPEC = ROOT / "distillery" / "examples" / "response.yaml"
TENANT = "bench"
# The uvicorn command line of both servers; the same as `distillery api` (uvicorn's defaults).
UVICORN_OPTIONS = ["--host", "127.0.0.1"]
SMALL_TENANT_JOBS = 1_000
LARGE_TENANT_JOBS = 100_000
# Targets of the issue: a job read at least this share of the bare route's rate; a 100k list at most
# this many times the 1k list's latency.
READ_SHARE_TARGET = 0.5
LIST_GROWTH_TARGET = 1.5
logger = logging.getLogger(__name__)


@dataclass
class Servers:
    """The two HTTP servers under load and what the cases need to address the API."""

    api_url: str
    bare_url: str
    database_url: str
    headers: dict[str, str]
    job_request: dict[str, Any]
    api_pid: int
    bare_pid: int


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per case")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds before each case")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--burst-connections", type=int, default=200, help="clients of the burst case")
    parser.add_argument("--burst-seconds", type=int, default=20, help="measured seconds of the burst case")
    parser.add_argument("--only-burst", action="store_true", help="run the burst case alone")
    parser.add_argument(
        "--only-read", action="store_true", help="run the bare endpoint and the job read alone"
    )
    parser.add_argument(
        "--profile", type=Path, help="record the API with py-spy during the job read (speedscope JSON)"
    )
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--out", type=Path, default=RESULTS / "api_load.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="distillery-api-load-") as scratch:
        cases = benchmark(args, Path(scratch))
    result = summarise(cases, args, load_before=load_before)
    print_table(result)
    write_result(result, args.out)


def benchmark(args: argparse.Namespace, scratch: Path) -> dict[str, dict[str, Any]]:
    """Start both servers on fresh state, run every case, stop everything."""
    broker = RedisServer(scratch)
    broker.start()
    try:
        with (
            scratch_database(args.postgres) as database_url,
            running_servers(database_url, broker, scratch) as servers,
        ):
            return run_cases(servers, args)
    finally:
        broker.stop()


@contextmanager
def running_servers(database_url: str, broker: RedisServer, scratch: Path) -> Iterator[Servers]:
    """Migrate, create a key, start the API and the bare app; stop them when the block ends."""
    data_dir = scratch / "var"
    env = service_env(
        database_url=database_url,
        broker_url=broker.url,
        data_dir=data_dir,
        environment="production",
        dev_api_key="",
    )
    subprocess.run(
        [sys.executable, "-m", "distillery.cli", "migrate"],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        check=True,
    )
    token = create_api_key(database_url)
    api_port, bare_port = free_port(), free_port()
    api = ServiceProcess(
        ["-m", "uvicorn", "app.main:app", "--port", str(api_port), *UVICORN_OPTIONS],
        env=env,
        log_path=scratch / "api.log",
    )
    api.start()
    bare: ServiceProcess | None = None
    try:
        api_url = f"http://127.0.0.1:{api_port}"
        wait_ready(api_url, api)
        headers = {"Authorization": f"Bearer {token}"}
        job_request, job = first_job(api_url, headers, data_dir)
        bare = ServiceProcess(
            ["-m", "uvicorn", "bench.service.bare_app:app", "--port", str(bare_port), *UVICORN_OPTIONS],
            env={**env, "BENCH_BARE_BODY": json.dumps(job)},
            log_path=scratch / "bare.log",
        )
        bare.start()
        wait_http(f"http://127.0.0.1:{bare_port}/bare", bare)
        assert api.process is not None and bare.process is not None
        yield Servers(
            api_url,
            f"http://127.0.0.1:{bare_port}",
            database_url,
            headers,
            job_request,
            api_pid=api.process.pid,
            bare_pid=bare.process.pid,
        )
    finally:
        for process in (bare, api):
            if process is not None:
                process.stop(timeout=30)
        make_engine(database_url).dispose()


def create_api_key(database_url: str) -> str:
    """A real key of the benchmark's tenant, as `distillery keys create` makes one."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            token = create_key(session=session, tenant=TENANT, name="api-load benchmark")
            session.commit()
        return token
    finally:
        engine.dispose()


def first_job(api_url: str, headers: dict[str, str], data_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upload a dataset, make the example's teacher exist, create one job; returns its request and job."""
    request: dict[str, Any] = yaml.safe_load(EXAMPLE_SPEC.read_text())
    teacher = data_dir / "models" / request["teacher"]["path"]
    teacher.mkdir(parents=True, exist_ok=True)
    # The API checks that a model directory has a config.json; no worker loads it here.
    (teacher / "config.json").write_text(json.dumps({"model_type": "bert"}))
    rows = "".join(json.dumps({"text": f"review {i}", "label": i % 2}) + "\n" for i in range(100))
    with httpx.Client(base_url=f"{api_url}/v1", headers=headers, timeout=30) as client:
        file = client.post("/files", files={"file": ("reviews.jsonl", rows.encode())})
        file.raise_for_status()
        # The example names local files, which `distillery submit` uploads; the one upload stands for each.
        for role in ("train_file", "eval_file", "test_file"):
            if role in request["data"]:
                request["data"][role] = file.json()["id"]
        request["name"] = "sst2-response-kd"
        created = client.post("/jobs", json=request)
        created.raise_for_status()
        return request, created.json()


def wait_http(url: str, process: ServiceProcess, timeout: float = 60) -> None:
    """Poll `url` until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process is not None and process.process.poll() is not None:
            raise RuntimeError(f"the server exited; see {process.log_path}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer in {timeout:.0f}s")


def run_cases(servers: Servers, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every case, in an order that keeps the tenant's job count what each case says."""
    cases: dict[str, dict[str, Any]] = {}

    def measure(name: str, url: str, *, profile: Path | None = None, **request: Any) -> LoadResult:
        server_pid = servers.bare_pid if url.startswith(servers.bare_url) else servers.api_pid
        run_wrk(url, seconds=args.warmup, connections=args.connections, **request)
        cpu_before = cpu_seconds(server_pid)
        with sampling(server_pid, profile, seconds=args.seconds):
            outcome = run_wrk(url, seconds=args.seconds, connections=args.connections, **request)
        cpu_ms = (cpu_seconds(server_pid) - cpu_before) * 1000 / max(outcome.requests, 1)
        cases[name] = {
            "url": url.split("/", 3)[-1].join(["/", ""]),
            **outcome.as_dict(),
            "server_cpu_ms_per_request": round(cpu_ms, 3),
        }
        logger.info(
            "%-28s %8.1f req/s  p50 %6.2f ms  p99 %7.2f ms  errors %d",
            name,
            outcome.requests_per_second,
            outcome.p50_ms,
            outcome.p99_ms,
            outcome.errors,
        )
        return outcome

    auth: dict[str, Any] = {"headers": servers.headers}
    fill_jobs(servers.database_url, total=SMALL_TENANT_JOBS, request=servers.job_request)
    if args.only_read:
        measure_read(measure, servers, profile=args.profile)
        return cases
    cases[BURST_CASE] = run_burst(
        f"{servers.api_url}/v1/jobs?limit=20",
        headers=servers.headers,
        connections=args.burst_connections,
        seconds=args.burst_seconds,
        server_pid=servers.api_pid,
    )
    if args.only_burst:
        return cases
    measure_read(measure, servers, profile=args.profile)
    for total in (SMALL_TENANT_JOBS, LARGE_TENANT_JOBS):
        fill_jobs(servers.database_url, total=total, request=servers.job_request)
        label = f"{total // 1000}k"
        measure(f"GET /v1/jobs?limit=20 ({label})", f"{servers.api_url}/v1/jobs?limit=20", **auth)
        cursor = job_at(servers.database_url, position=total // 2)
        measure(
            f"GET /v1/jobs?limit=20&after ({label}, deep)",
            f"{servers.api_url}/v1/jobs?limit=20&after={cursor}",
            **auth,
        )
    measure(
        "POST /v1/jobs",
        f"{servers.api_url}/v1/jobs",
        method="POST",
        headers={**servers.headers, "Content-Type": "application/json"},
        body=json.dumps(servers.job_request),
    )
    return cases


def measure_read(measure: Callable[..., LoadResult], servers: Servers, *, profile: Path | None) -> None:
    """The bare endpoint, then the newest job's read (sampled by py-spy into `profile` when given)."""
    measure("bare endpoint", f"{servers.bare_url}/bare")
    job_id = job_at(servers.database_url, position=0)
    measure(
        "GET /v1/jobs/{id}", f"{servers.api_url}/v1/jobs/{job_id}", profile=profile, headers=servers.headers
    )


def fill_jobs(database_url: str, *, total: int, request: dict[str, Any]) -> None:
    """Bulk-insert succeeded jobs of the tenant, older than every job so far, until it has `total`."""
    with psycopg.connect(plain_url(database_url), autocommit=True) as connection:
        spec, oldest, count = connection.execute(
            "SELECT (SELECT spec FROM jobs WHERE tenant = %(t)s ORDER BY created_at LIMIT 1),"
            " min(created_at), count(*) FROM jobs WHERE tenant = %(t)s",
            {"t": TENANT},
        ).fetchone() or (None, None, 0)
        missing = total - count
        if missing <= 0:
            return
        started = time.monotonic()
        connection.execute(
            """
            INSERT INTO jobs (id, tenant, name, spec, status, step, total_steps, epoch, attempts, result,
                              created_at, updated_at, queued_at, started_at, finished_at, deliveries)
            SELECT 'job_' || substr(md5(%(seed)s || g::text), 1, 24), %(tenant)s, %(name)s, %(spec)s,
                   'succeeded', 1125, 1125, 3.0, 1, %(result)s,
                   t, t + interval '9 minutes', t, t + interval '1 second', t + interval '9 minutes', 1
            FROM generate_series(1, %(missing)s) AS g,
                 LATERAL (SELECT %(oldest)s - g * interval '1 minute' AS t) AS moment
            """,
            {
                "seed": secrets.token_hex(8),
                "tenant": TENANT,
                "name": request.get("name"),
                "spec": psycopg.types.json.Jsonb(spec),
                "result": psycopg.types.json.Jsonb(SUCCEEDED_RESULT),
                "oldest": oldest,
                "missing": missing,
            },
        )
        connection.execute("ANALYZE jobs")
        logger.info("inserted %d jobs (tenant now %d) in %.1fs", missing, total, time.monotonic() - started)


# The summary a succeeded job keeps, of a realistic size.
SUCCEEDED_RESULT = {
    "metrics": {"eval_accuracy": 0.7705, "eval_macro_f1": 0.751, "eval_loss": 0.6123},
    "best_step": 1125,
    "student": {"parameters": 17_400_000, "non_embedding_parameters": 5_500_000, "bytes": 70_300_000},
    "teacher": {"parameters": 22_700_000, "bytes": 91_600_000},
    "seconds": 429.0,
}


def job_at(database_url: str, *, position: int) -> str:
    """The id of the tenant's job at `position` in the list order (0: the newest)."""
    with psycopg.connect(plain_url(database_url)) as connection:
        row = connection.execute(
            "SELECT id FROM jobs WHERE tenant = %s ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
            (TENANT, position),
        ).fetchone()
    assert row is not None, f"the tenant has no job at position {position}"
    return str(row[0])


def plain_url(database_url: str) -> str:
    """A libpq URL from a SQLAlchemy one."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def summarise(
    cases: dict[str, dict[str, Any]], args: argparse.Namespace, *, load_before: tuple[float, ...]
) -> dict[str, Any]:
    """The cases with the targets' verdicts, the machine and the options."""
    if args.only_burst:
        return {"cases": cases, "targets": {}, "machine": machine(load_before), "command": command(args)}
    read_share = (
        cases["GET /v1/jobs/{id}"]["requests_per_second"] / cases["bare endpoint"]["requests_per_second"]
    )
    targets: dict[str, Any] = {
        "read_share_of_bare": {
            "value": round(read_share, 3),
            "target": f">= {READ_SHARE_TARGET}",
            "met": read_share >= READ_SHARE_TARGET,
        }
    }
    if not args.only_read:
        targets["list_p50_100k_over_1k"] = {
            page: {
                "value": round(value, 3),
                "target": f"<= {LIST_GROWTH_TARGET}",
                "met": value <= LIST_GROWTH_TARGET,
            }
            for page, value in list_growth(cases).items()
        }
    return {
        "cases": cases,
        "targets": targets,
        "machine": machine(load_before),
        "flags": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "connections": args.connections,
            "wrk_threads": 1,
            "uvicorn": " ".join(UVICORN_OPTIONS),
            "api_key": "created with app.auth.service.create_key (production mode, no development key)",
        },
        "command": command(args),
    }


def list_growth(cases: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The list's p50 at 100k jobs over its p50 at 1k, for the first page and a deep one."""
    return {
        page: cases[f"GET /v1/jobs?limit=20{suffix.format('100k')}"]["p50_ms"]
        / cases[f"GET /v1/jobs?limit=20{suffix.format('1k')}"]["p50_ms"]
        for page, suffix in (("first page", " ({})"), ("deep page", "&after ({}, deep)"))
    }


def machine(load_before: tuple[float, ...]) -> dict[str, Any]:
    """The CPU, its cores and how loaded the machine was around the run."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }


def command(args: argparse.Namespace) -> str:
    """The command line that reproduces the run."""
    line = f"python -m bench.service.api_load --seconds {args.seconds} --connections {args.connections}"
    for flag in ("only_burst", "only_read"):
        if getattr(args, flag):
            line += " --" + flag.replace("_", "-")
    return line


def cpu_model() -> str:
    """The CPU's model name, as `lscpu` gives it."""
    output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    for line in output.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def print_table(result: dict[str, Any]) -> None:
    """The cases and the targets as a table."""
    table = Table(title="API load")
    for column in ("case", "req/s", "p50 ms", "p99 ms", "errors (rate)", "server CPU ms/req"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for name, case in result["cases"].items():
        table.add_row(
            name,
            f"{case['requests_per_second']:.0f}",
            f"{case['p50_ms']:.2f}",
            f"{case['p99_ms']:.2f}",
            f"{case['errors']} ({case['errors'] / max(case['requests'], 1):.1%})",
            f"{case['server_cpu_ms_per_request']:.2f}",
        )
    console = Console(width=120)
    console.print(table)
    targets = result["targets"]
    if not targets:
        return
    share = targets["read_share_of_bare"]
    console.print(f"GET /v1/jobs/{{id}} / bare endpoint: {share['value']:.0%} ({verdict(share)})")
    for page, growth in targets.get("list_p50_100k_over_1k", {}).items():
        console.print(f"list p50 at 100k / at 1k, {page}: {growth['value']:.2f}x ({verdict(growth)})")
    console.print(
        f"CPU: {result['machine']['cpu']}, load average before {result['machine']['load_average_before']}"
    )


def verdict(target: dict[str, Any]) -> str:
    """`target >= 0.5: met` or `...: MISSED`."""
    return f"target {target['target']}: {'met' if target['met'] else 'MISSED'}"


if __name__ == "__main__":
    main()
