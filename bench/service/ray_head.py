"""A Ray head of a run's own (`ray start --head --block`), for the ray executor's benchmark and tests.

Started in a session of its own on free ports, with a short temporary folder (Ray's unix sockets live
under it, and their paths are limited to 107 characters). Stopped by stopping that process and every
process it started, never with `ray stop`, which would stop any other Ray on the machine.
"""

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from bench.service.local_servers import free_port

START_SECONDS = 90


class RayHead:
    """A running Ray head: its `ray start --block` process and its Jobs API (dashboard) address."""

    def __init__(self, process: subprocess.Popen[bytes], address: str, log: Path) -> None:
        self.process, self.address, self.log = process, address, log

    def processes(self) -> list[psutil.Process]:
        """Every live process the head started (GCS, raylet, dashboard, Ray's workers)."""
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def running(self, marker: str) -> list[psutil.Process]:
        """The head's live processes whose command line holds `marker` (`ray::RayTrainWorker`, ...)."""
        return [p for p in self.processes() if marker in _command_line(p) and _alive(p)]

    def wait_ready(self) -> None:
        """Wait until the Jobs API answers."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Ray head exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.address}/api/jobs/", timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"the Ray head did not answer: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM to `ray start --block` and what it started, then SIGKILL to whatever is left."""
        started = [psutil.Process(self.process.pid), *self.processes()]
        for process in started:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        _, alive = psutil.wait_procs(started, timeout=5)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()
        self.process.wait()


@contextlib.contextmanager
def ray_head(cpus: int = 2) -> Iterator[RayHead]:
    """A one-node Ray cluster with `cpus` CPUs and no GPU, stopped on the way out."""
    temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")
    dashboard = free_port()
    command = [
        str(Path(sys.executable).with_name("ray")),
        *("start", "--head", "--block", "--disable-usage-stats", "--include-dashboard", "true"),
        *("--num-cpus", str(cpus), "--num-gpus", "0", "--port", str(free_port())),
        *("--dashboard-port", str(dashboard), "--dashboard-host", "127.0.0.1", "--temp-dir", temp_dir),
    ]
    log = Path(temp_dir) / "head.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    head = RayHead(process, f"http://127.0.0.1:{dashboard}", log)
    try:
        head.wait_ready()
        yield head
    finally:
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
