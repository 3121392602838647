"""Launching a job script over several CPU processes with torchrun (gloo), as the worker does."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
JOB_SCRIPT = HERE / "distributed_job.py"
REPOSITORY = HERE.parent.parent


def free_port() -> int:
    """A TCP port nothing listens on now, for the rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch(
    arguments: dict[str, Any], directory: Path, *, processes: int, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the job script in `processes` ranks (1: a plain process, no torchrun); the finished launch."""
    directory.mkdir(parents=True, exist_ok=True)
    arguments = {**arguments, "results": str(directory / "results")}
    arguments_path = directory / "arguments.json"
    arguments_path.write_text(json.dumps(arguments))
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", f"--nproc-per-node={processes}", "--rdzv-backend=c10d"]
        launcher += [f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--max-restarts=0"]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPOSITORY), str(HERE)]),
        "OMP_NUM_THREADS": "1",
    }
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environment.pop(name, None)
    return subprocess.run(
        [*launcher, str(JOB_SCRIPT), str(arguments_path)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_ranks(
    arguments: dict[str, Any], directory: Path, *, processes: int, timeout: float = 300
) -> list[dict[str, Any]]:
    """Run the job script in `processes` ranks (1: a plain process, no torchrun); each rank's record."""
    finished = launch(arguments, directory, processes=processes, timeout=timeout)
    assert finished.returncode == 0, finished.stdout[-4000:] + finished.stderr[-8000:]
    results = directory / "results"
    return [json.loads((results / f"rank-{rank}.json").read_text()) for rank in range(processes)]
