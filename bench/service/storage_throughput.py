"""Upload and download throughput through the API on the local store and on an S3 store, in the same run.

The S3 store is moto's server, in a process of its own on this machine: the figures show what the S3 path
(boto3, parts, HTTP to the store) costs against local files, not what a real S3 answers. Each API is a
real uvicorn process on the embedded default (SQLite), run from this source tree. An upload is a CSV
dataset posted to /v1/files (received, checked row by row, stored); a download streams a job's artifact of
the same size from /v1/jobs/{id}/artifacts/{name}. The raw store's put_file/get_file are timed too,
without the API. Writes `bench/results/storage_throughput.json`.

    python -m bench.service.storage_throughput                 # 64 MB and 256 MB
    python -m bench.service.storage_throughput --sizes 16 64
"""

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.paths import RESULTS
from bench.result_file import uptime, write_result
from bench.service.local_servers import free_port
from bench.service.processes import ServiceProcess, service_env, wait_ready
from bench.service.queue_hygiene import cpu_model

MB = 1024 * 1024
API_KEY = "dk-dev-embedded-only"
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="file sizes in MB")
    parser.add_argument("--out", type=Path, default=RESULTS / "storage_throughput.json")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="distillery-storage-bench-") as scratch_name:
        scratch = Path(scratch_name)
        files = {size: write_csv(scratch / f"data-{size}.csv", size * MB) for size in args.sizes}
        with moto_server(scratch) as endpoint:
            os.environ.update({**AWS, "AWS_ENDPOINT_URL_S3": endpoint})
            rows = [*through_api(scratch, endpoint, files), *raw_store(scratch, endpoint, files)]
    table = Table(title="Storage throughput (MB/s)")
    for column in ("path", "store", "MB", "upload MB/s", "download MB/s"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["path"],
            row["store"],
            str(row["mb"]),
            f"{row['upload_mbps']:.0f}",
            f"{row['download_mbps']:.0f}",
        )
    console.print(table)
    result = {
        "cpu": cpu_model(),
        "uptime": uptime(),
        "command": " ".join(["python -m bench.service.storage_throughput", *sys.argv[1:]]),
        "rows": rows,
    }
    write_result(result, args.out, console=console)


def write_csv(path: Path, size: int) -> Path:
    """A CSV dataset of about `size` bytes, rows of ~1 KB."""
    with path.open("w") as out:
        out.write("text,label\n")
        written, row = 11, 0
        while written < size:
            line = f"row {row} {'x' * 1000},{row % 2}\n"
            out.write(line)
            written, row = written + len(line), row + 1
    return path


@contextlib.contextmanager
def moto_server(scratch: Path) -> Iterator[str]:
    """moto's S3 server in its own process; yields its endpoint."""
    port = free_port()
    process = ServiceProcess(
        ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=dict(os.environ),
        log_path=scratch / "moto.log",
    )
    process.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(endpoint, timeout=1).status_code < 500)
        yield endpoint
    finally:
        process.stop()


def wait_until(ready: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if ready():
                return
        time.sleep(0.2)
    raise TimeoutError("not ready in time")


def new_bucket(endpoint: str) -> str:
    import boto3

    name = f"bench-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


def through_api(scratch: Path, endpoint: str, files: dict[int, Path]) -> list[dict[str, Any]]:
    """Each store behind its own API process: upload each file, then download it as an artifact."""
    rows = []
    for store in ("local", "s3"):
        data_dir = scratch / f"api-{store}"
        (data_dir / "models" / "tiny").mkdir(parents=True)
        (data_dir / "models" / "tiny" / "config.json").write_text(json.dumps({"model_type": "bert"}))
        settings = {"model_roots": json.dumps([str(data_dir / "models")]), "max_upload_bytes": str(1024 * MB)}
        if store == "s3":
            settings["storage_url"] = f"s3://{new_bucket(endpoint)}/distillery"
        env = {
            **service_env(database_url="", broker_url="", data_dir=data_dir, **settings),
            **AWS,
            "AWS_ENDPOINT_URL_S3": endpoint,
        }
        with api_process(env, data_dir) as api:
            job_id = a_job(api)
            for size, path in files.items():
                upload = timed(partial(post_file, api, path))
                add_artifact(env, data_dir, job_id, path)
                download = timed(partial(get_artifact, api, job_id, path.name))
                rows.append(row("API", store, size, upload, download))
    return rows


@contextlib.contextmanager
def api_process(env: dict[str, str], data_dir: Path) -> Iterator[httpx.Client]:
    port = free_port()
    process = ServiceProcess(
        ["-m", "uvicorn", "app.main:app", "--port", str(port)], env=env, log_path=data_dir / "api.log"
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        with httpx.Client(
            base_url=f"{url}/v1", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=600
        ) as client:
            yield client
    finally:
        process.stop()


def a_job(api: httpx.Client) -> str:
    file = api.post("/files", files={"file": ("tiny.csv", b"text,label\ngood,1\n")}).raise_for_status().json()
    spec = {"teacher": {"path": "tiny"}, "data": {"train_file": file["id"]}, "method": {"type": "supervised"}}
    job_id: str = api.post("/jobs", json=spec).raise_for_status().json()["id"]
    return job_id


def post_file(api: httpx.Client, path: Path) -> None:
    with path.open("rb") as stream:
        api.post("/files", files={"file": (path.name, stream)}).raise_for_status()


def get_artifact(api: httpx.Client, job_id: str, name: str) -> None:
    with api.stream("GET", f"/jobs/{job_id}/artifacts/{name}") as response:
        response.raise_for_status()
        for _ in response.iter_bytes(MB):
            pass


def add_artifact(env: dict[str, str], data_dir: Path, job_id: str, path: Path) -> None:
    """Store a file as the job's artifact and record it, as a worker does."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from app.core.config import Settings
    from app.core.storage import open_store, size_and_sha256
    from app.jobs.models import Artifact

    settings = Settings(data_dir=data_dir, storage_url=env.get("DISTILLERY_STORAGE_URL", ""))
    location = f"jobs/{job_id}/{path.name}"
    open_store(settings).put_file(location, path)
    size, sha256 = size_and_sha256(path)
    with Session(create_engine(settings.database_url)) as session:
        session.add(Artifact(job_id=job_id, name=path.name, bytes=size, sha256=sha256, location=location))
        session.commit()


def raw_store(scratch: Path, endpoint: str, files: dict[int, Path]) -> list[dict[str, Any]]:
    """The store's own put_file and get_file, in this process, without the API."""
    from app.core.storage import ArtifactStore, LocalStore
    from app.core.storage.s3 import S3Store

    stores: dict[str, ArtifactStore] = {
        "local": LocalStore(scratch / "raw-local"),
        "s3": S3Store(f"s3://{new_bucket(endpoint)}/raw"),
    }
    rows = []
    for name, store in stores.items():
        for size, path in files.items():
            key = f"raw/{path.name}"
            upload = timed(partial(store.put_file, key, path))
            target = scratch / f"back-{name}-{size}"
            download = timed(partial(store.get_file, key, target))
            target.unlink()
            rows.append(row("store", name, size, upload, download))
    return rows


def timed(action: Callable[[], None]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def row(path: str, store: str, size: int, upload: float, download: float) -> dict[str, Any]:
    return {
        "path": path, "store": store, "mb": size,
        "upload_seconds": round(upload, 3), "download_seconds": round(download, 3),
        "upload_mbps": round(size / upload, 1), "download_mbps": round(size / download, 1),
    }  # fmt: skip


if __name__ == "__main__":
    main()
