"""The job both pipelines of `bench.naive.distill_vs_naive` run, and how each run happens in a child process.

A side is a module with `run(job) -> dict`; `python -m bench.<module> JOB.json OUT.json` runs it on a job
written as JSON and writes what it returns. The parent imports no torch: on Linux a child's
peak RSS (ru_maxrss) starts from its parent's RSS when it was started, so a small parent keeps each
run's figure its own.
"""

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.paths import ROOT
from bench.result_file import write_json

# Every other layer of MiniLM-L6's six, as DistilBERT takes every other layer of BERT-base.
STUDENT_LAYERS = [0, 2, 4]
# Where the student's layers come from: the pretrained base model, or the fine-tuned teacher.
INITS = ("base", "teacher")


@dataclass(frozen=True)
class TeacherRecipe:
    """How the teacher is fine-tuned (the demo's teacher recipe by default)."""

    epochs: int = 3
    learning_rate: float = 1e-4
    batch_size: int = 32
    max_length: int = 64
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class KDJob:
    """Response KD of a fine-tuned teacher into a student made of some of its layers; both sides share it."""

    train_file: str
    eval_file: str
    test_file: str
    teacher_dir: str
    base_dir: str
    init: str = "teacher"
    layers: list[int] = field(default_factory=lambda: list(STUDENT_LAYERS))
    temperature: float = 4.0
    alpha: float = 0.7
    batch_size: int = 32
    learning_rate: float = 5e-5
    epochs: int = 2
    max_length: int = 64
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 0
    device: str = "cpu"
    # The plain side's precision: Trainer's default (fp32), or "auto" for the one Distillery picks.
    plain_precision: str = "fp32"
    # Ours only: keep the student's copied token embeddings out of training (training.freeze_embeddings).
    freeze_embeddings: bool = False

    def student_source(self) -> str:
        """The model directory whose layers the student copies."""
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        return self.base_dir if self.init == "base" else self.teacher_dir

    @classmethod
    def load(cls, path: Path) -> "KDJob":
        """A job written as JSON by `dataclasses.asdict`."""
        return cls(**json.loads(path.read_text()))


def peak_cuda_bytes(device: str) -> int | None:
    """The most GPU memory torch allocated in this process, on a CUDA device; None elsewhere."""
    if not device.startswith("cuda"):
        return None
    import torch

    return int(torch.cuda.max_memory_allocated())


def own_peak_rss_bytes() -> int | None:
    """This process's own peak RSS since it started its program (VmHWM), to check ru_maxrss against."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def child_main(run: Callable[[KDJob], dict[str, Any]]) -> None:
    """Entry point of a side's module: `python -m bench.<side> JOB.json OUT.json`."""
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.<side> JOB.json OUT.json")
    result = run(KDJob.load(Path(sys.argv[1])))
    import torch  # already loaded by the run

    result["threads"] = torch.get_num_threads()
    result["own_peak_rss_bytes"] = own_peak_rss_bytes()
    write_json(Path(sys.argv[2]), result)


def run_child(
    module: str, request: Path, out: Path, log: Path, *, threads: int | None = None
) -> dict[str, Any]:
    """`python -m module request out` in a fresh process; what it wrote, its peak RSS, wall and CPU time.

    `threads` sets the child's OMP_NUM_THREADS, which torch takes as its thread count; None: its default.
    """
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    load_before = [round(value, 2) for value in os.getloadavg()]
    started = time.perf_counter()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", module, str(request), str(out)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(process.pid, 0)  # the resource usage of this child alone
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"python -m {module} exited with {process.returncode}; see {log}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["peak_rss_bytes"] = usage.ru_maxrss * 1024  # Linux reports KiB
    result["process_seconds"] = time.perf_counter() - started
    # CPU time beside wall time: on a shared machine, wall time also counts waiting for a core.
    result["process_cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["load_average_before"] = load_before
    result["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
    return result


def parent_peak_rss_bytes() -> int:
    """This (parent) process's peak RSS so far: the floor of every child's ru_maxrss."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
