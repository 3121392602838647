"""The machine `bench.naive.distill_vs_naive` ran on: CPU model and flags, threads, versions, precision.

Run as a child process, so the benchmark's own process never imports torch:

    python -m bench.naive.machine REQUEST.json OUT.json
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.result_file import write_json

# CPU flags that decide how fast training runs: wide vectors and native bf16 (AVX-512 BF16, AMX).
FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8")


def cpu_model() -> str:
    """lscpu's "Model name" (the first one, on a machine with several), else /proc/cpuinfo's."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        listing = ""
    for line in listing.splitlines():
        if line.strip().startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_flags() -> set[str]:
    """The first CPU's flags from /proc/cpuinfo."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def describe_machine(device: str) -> dict[str, Any]:
    """What the results depend on, for the JSON and the table's caption."""
    import accelerate
    import torch
    import transformers

    from engine.training.precision import choose_precision, probe_bf16

    target = torch.device(device)
    flags = cpu_flags()
    precision = choose_precision("auto", target)
    machine = {
        "device": device,
        "cpu_model": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "threads": torch.get_num_threads(),
        "flags": {flag: flag in flags for flag in FLAGS_OF_INTEREST},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "precision": precision.precision,
        "precision_reason": precision.reason,
        "bf16_native": probe_bf16(target).native,
    }
    if target.type == "cuda":
        machine["gpu"] = torch.cuda.get_device_name(target)
    return machine


def main() -> None:
    """Child entry point: `python -m bench.naive.machine REQUEST.json OUT.json`; REQUEST holds the device."""
    request = json.loads(Path(sys.argv[1]).read_text())
    machine = describe_machine(request["device"])
    write_json(Path(sys.argv[2]), {"machine": machine})


if __name__ == "__main__":
    main()
