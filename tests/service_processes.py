"""The service's processes as deployed, started by tests: a Celery worker and a uvicorn API."""

import subprocess
import sys
import time
from pathlib import Path

import httpx

from worker.cli import worker_arguments


def start_worker(
    env: dict[str, str], *, queue_name: str, log_path: Path, concurrency: int = 1
) -> subprocess.Popen[bytes]:
    """`celery -A worker worker` on one queue, one job per pool process, its output in `log_path`."""
    arguments = worker_arguments(
        pool="prefork", concurrency=concurrency, queue=queue_name, hostname="test@%h"
    )
    command = [sys.executable, "-m", "celery", "-A", "worker", *arguments]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def start_webhook_worker(env: dict[str, str], *, log_path: Path) -> subprocess.Popen[bytes]:
    """`distillery webhook-worker`, its output in `log_path`."""
    command = [sys.executable, "-m", "distillery.cli", "webhook-worker", "--loglevel", "INFO"]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def start_api(env: dict[str, str], *, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """`uvicorn app.main:app` on a port; returns once it answers `/healthz`."""
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    stop(process)
    raise RuntimeError("the API did not answer within 60s")


def stop(process: subprocess.Popen[bytes]) -> int | None:
    """Terminate a process started here and wait for it; returns its exit code."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return process.returncode
