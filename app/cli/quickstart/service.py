"""Starts the embedded service (API and one worker, SQLite, serverless broker) for the quickstart, demos."""

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from app.core.config import DEV_API_KEY
from distillery.client import DistilleryClient

# The folder holding the `app` package: the checkout, or site-packages for an installed wheel.
ROOT = Path(__file__).resolve().parents[3]


def install_model(source: Path, models_root: Path, name: str) -> str:
    """Copy a model directory under the service's model root; returns its reference path."""
    target = models_root / name
    if not (target / "config.json").is_file():
        shutil.copytree(source, target, dirs_exist_ok=True)
    return name


@contextlib.contextmanager
def embedded_service(
    data_dir: Path,
    *,
    port: int,
    log_path: Path,
    settings: Mapping[str, str] | None = None,
    api_key: str = DEV_API_KEY,
) -> Iterator[DistilleryClient]:
    """Run `distillery up` on `data_dir` (and any other `DISTILLERY_*` settings) until the block ends;
    yields a client for it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DISTILLERY_")}
    env["DISTILLERY_DATA_DIR"] = str(data_dir)
    env["DISTILLERY_RECONCILE_SECONDS"] = "10"
    # The service runs this checkout's code, whichever checkout the environment was installed from.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(settings or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    distillery = Path(sys.executable).with_name("distillery")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(distillery), "up", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        with DistilleryClient(url, api_key=api_key, timeout=120) as client:
            yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(1)
    raise TimeoutError(f"the service at {url} was not ready in {timeout:.0f}s; see {log_path}")


def answers(url: str) -> bool:
    """Whether a Distillery service is ready at `url`."""
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def local_service(
    data_dir: Path, *, url: str | None, api_key: str, port: int, log_path: Path
) -> Iterator[tuple[DistilleryClient, bool]]:
    """A client for the service at `url`, or at the local `port` when one answers there; otherwise the
    embedded service, started on `data_dir` with this environment's settings until the block ends.
    Yields the client and whether the service was started here."""
    local = f"http://127.0.0.1:{port}"
    if url or answers(local):
        with DistilleryClient(url or local, api_key=api_key, timeout=120) as client:
            yield client, False
        return
    # The user's own settings (model roots, a development key) reach the service it starts.
    settings = {
        key: value
        for key, value in os.environ.items()
        if key.startswith("DISTILLERY_") and key not in ("DISTILLERY_URL", "DISTILLERY_API_KEY")
    }
    with embedded_service(
        data_dir, port=port, log_path=log_path, settings=settings, api_key=api_key
    ) as client:
        yield client, True
