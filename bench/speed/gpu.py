"""Tokens per second and bf16 model FLOPs utilisation on one NVIDIA GPU, then the other benchmarks there.

Builds, from configs with random weights (nothing is downloaded), a BERT-base-sized teacher (12 layers,
hidden 768, 12 heads, feed-forward 3072) and a 6-layer student of the same width, and times under bf16
autocast (fp32 where the device has no native bf16) the teacher's inference forward and the student's
training step as the engine takes it (`train_step`: forward, cross-entropy, backward, clipping, fused
AdamW). Batches are random token ids whose lengths are drawn uniformly from a quarter of the max length
to all of it, each batch padded to its longest; tokens/s and FLOPs count real tokens only (see
`bench.speed.mfu` for the FLOP count). Utilisation is against the rate of `torch.mm` measured on the same
device in the same precision. Then it runs `bench.speed.mfu --device cuda`; on a machine with two GPUs or
more, `bench.speed.ddp_scaling --device cuda` with DDP and with FSDP (the demo's KD job on one GPU, then on
two over NCCL); and, where their modules exist, `bench.naive.distill_vs_naive` and
`bench.speed.teacher_cache` with `--quick --device cuda`, each in the time left of a 5-minute budget,
and records how each ended. Writes `bench/results/gpu.json`.

Without CUDA it falls back to the CPU with tiny models (`--tiny`, a seconds-long check that the script
works) and skips the other benchmarks: its figures say nothing about a GPU.

    bash bench/speed/gpu.sh
    python -m bench.speed.gpu --tiny --device cpu --out /tmp/gpu.json
"""

import argparse
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor
from transformers import BertConfig, BertForSequenceClassification

from bench.paths import RESULTS, ROOT
from bench.result_file import write_result
from bench.speed.levers_workloads import LABELS, supervised, training_pass
from bench.speed.mfu import cpu_description, forward_flops, interleaved_medians, load_average, synchronised
from distillery.jobspec import TrainingSpec
from engine.training.precision import choose_precision

BUDGET_SECONDS = 290  # the whole script, other benchmarks included, stays under 5 minutes
OTHER_BENCHMARKS = ("bench.naive.distill_vs_naive", "bench.speed.teacher_cache")


@dataclass(frozen=True)
class Sizes:
    """Model and batch sizes of one run."""

    teacher_layers: int = 12
    student_layers: int = 6
    hidden: int = 768
    heads: int = 12
    intermediate: int = 3072
    vocab: int = 30522
    batch: int = 256  # large enough to keep a GPU busy; the service's default is 32
    max_length: int = 128
    batches: int = 4
    matmul: int = 8192
    repeats: int = 20


TINY = Sizes(
    teacher_layers=2,
    student_layers=1,
    hidden=64,
    heads=2,
    intermediate=128,
    vocab=512,
    batch=4,
    max_length=16,
    batches=2,
    matmul=256,
    repeats=2,
)


def bert(sizes: Sizes, layers: int, seed: int) -> BertForSequenceClassification:
    """A BERT classifier of these sizes with random weights."""
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=sizes.vocab,
        hidden_size=sizes.hidden,
        num_hidden_layers=layers,
        num_attention_heads=sizes.heads,
        intermediate_size=sizes.intermediate,
        max_position_embeddings=max(512, sizes.max_length),
        num_labels=LABELS,
    )
    return BertForSequenceClassification(config)


def random_batches(sizes: Sizes, device: torch.device, seed: int) -> list[dict[str, Tensor]]:
    """Batches of random ids, lengths uniform in [max_length / 4, max_length], padded to the longest."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(sizes.batches):
        lengths = torch.randint(
            sizes.max_length // 4, sizes.max_length + 1, (sizes.batch,), generator=generator
        )
        width = int(lengths.max())
        mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
        ids = torch.randint(5, sizes.vocab, (sizes.batch, width), generator=generator) * mask
        labels = torch.randint(0, LABELS, (sizes.batch,), generator=generator)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        batches.append({key: value.to(device) for key, value in batch.items()})
    return batches


def device_description(device: torch.device) -> dict[str, Any]:
    """The GPU's name, memory and capability, or the CPU's description."""
    if device.type != "cuda":
        return {"type": "cpu", **{k: v for k, v in cpu_description().items() if k != "flags"}}
    properties = torch.cuda.get_device_properties(device)
    return {
        "type": "cuda",
        "name": properties.name,
        "memory_gib": round(properties.total_memory / 2**30, 1),
        "capability": f"{properties.major}.{properties.minor}",
        "cuda": torch.version.cuda,
    }


def measure(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    """Matmul rate, teacher forward and student training step figures."""
    precision = choose_precision("auto", device)
    dtype = torch.bfloat16 if precision.precision == "bf16" else torch.float32
    teacher = bert(sizes, sizes.teacher_layers, seed=0).to(device).eval()
    method = supervised(bert(sizes, sizes.student_layers, seed=1)).to(device)
    training = TrainingSpec(learning_rate=1e-5, warmup_ratio=0.0)
    batches = random_batches(sizes, device, seed=0)
    lengths = [int(n) for batch in batches for n in batch["attention_mask"].sum(dim=1)]
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(sizes.matmul, sizes.matmul, generator=generator).to(device, dtype) for _ in range(2))

    @torch.inference_mode()
    def teacher_pass() -> None:
        for batch in batches:
            with precision.autocast():
                teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

    runs = {
        "matmul": lambda: torch.mm(a, b),
        "teacher_forward": teacher_pass,
        "student_training_step": training_pass(method, batches, training, precision, device=device),
    }
    seconds = interleaved_medians(
        {name: synchronised(run, device.type) for name, run in runs.items()}, warmup=2, repeats=sizes.repeats
    )
    rate = 2 * sizes.matmul**3 / seconds["matmul"]
    config = teacher.config
    useful = {
        "teacher_forward": forward_flops(config, sizes.teacher_layers, lengths, num_labels=LABELS),
        "student_training_step": 3 * forward_flops(config, sizes.student_layers, lengths, num_labels=LABELS),
    }
    workloads = {
        name: {
            "seconds_per_batch": round(seconds[name] / sizes.batches, 5),
            "tokens_per_second": round(sum(lengths) / seconds[name]),
            "useful_gflops": round(flops / seconds[name] / 1e9, 2),
            "mfu": round(flops / seconds[name] / rate, 4),
        }
        for name, flops in useful.items()
    }
    return {
        "precision": precision.precision,
        "precision_reason": precision.reason,
        "matmul": {"shape": f"{sizes.matmul}^3", "gflops": round(rate / 1e9, 1)},
        "batches": {
            "count": sizes.batches,
            "sequences_each": sizes.batch,
            "real_tokens": sum(lengths),
            "padded_tokens": sum(int(batch["input_ids"].numel()) for batch in batches),
        },
        "workloads": workloads,
    }


def other_benchmarks(out_dir: Path, deadline: float) -> list[dict[str, Any]]:
    """Run bench.speed.mfu and, where they exist, the other CUDA benchmarks, each in the time left."""
    commands = [["bench.speed.mfu", "--device", "cuda", "--out", str(out_dir / "mfu_cuda.json")]]
    records: list[dict[str, Any]] = []
    if torch.cuda.device_count() >= 2:  # one job over two GPUs: DDP, then FSDP, each against one GPU
        for parallelism in ("ddp", "fsdp"):
            out = str(out_dir / f"ddp_scaling_cuda_{parallelism}.json")
            scaling = ["--device", "cuda", "--parallelism", parallelism, "--out", out]
            commands.append(["bench.speed.ddp_scaling", *scaling])
    else:
        records.append({"module": "bench.speed.ddp_scaling", "status": "skipped: fewer than 2 GPUs"})
    for module in OTHER_BENCHMARKS:
        present = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True)
        if present.returncode != 0:
            records.append({"module": module, "status": "skipped: the module is not in this tree"})
            continue
        command = [module, "--quick", "--device", "cuda"]
        usage = subprocess.run(
            [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True
        )
        if "--out" in usage.stdout:  # keeps the CPU results beside it
            command += ["--out", str(out_dir / f"{module.rsplit('.', 1)[-1]}_quick_cuda.json")]
        commands.append(command)
    for command in commands:
        record: dict[str, Any] = {"module": command[0], "command": "python -m " + " ".join(command)}
        left = deadline - time.monotonic()
        if left < 10:
            records.append({**record, "status": "skipped: no time left in the 5-minute budget"})
            continue
        start = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=left
            )
            status = "ok" if done.returncode == 0 else f"failed with exit code {done.returncode}"
            tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
        except subprocess.TimeoutExpired:
            status, tail = f"stopped after {left:.0f} s, at the end of the budget", []
        records.append(
            {**record, "status": status, "seconds": round(time.monotonic() - start, 1), "tail": tail}
        )
        Console().print(f"{record['command']}: {status}")
    return records


def print_table(result: dict[str, Any]) -> None:
    """The figures as a table."""
    device, figures = result["device"], result["figures"]
    name = device.get("name") or device.get("model")
    matmul = figures["matmul"]["gflops"] / 1000
    table = Table(title=f"{name}: {figures['precision']}, torch.mm {matmul:,.1f} TFLOP/s")
    for column in ("workload", "s/batch", "tokens/s", "useful TFLOP/s", "MFU"):
        table.add_column(column, justify="left" if column == "workload" else "right")
    for workload, row in figures["workloads"].items():
        table.add_row(
            workload.replace("_", " "),
            f"{row['seconds_per_batch']}",
            f"{row['tokens_per_second']:,}",
            f"{row['useful_gflops'] / 1000:,.2f}",
            f"{row['mfu']:.3f}",
        )
    Console().print(table)
    for record in result["other_benchmarks"]:
        Console().print(f"{record['module']}: {record['status']}")
    Console().print(f"Whole run: {result['seconds']} s")


def main() -> None:
    start = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny models and batches: checks the script works"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu.json")
    args = parser.parse_args()
    wanted = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(wanted)
    fallback = device.type != "cuda"
    if fallback:
        Console().print(
            "No CUDA device: falling back to the CPU with tiny sizes; the figures say nothing of a GPU."
        )
    sizes = TINY if args.tiny or fallback else Sizes()
    figures = measure(sizes, device)
    if fallback or args.tiny:
        others = [
            {"module": "bench.speed.mfu and the others", "status": "skipped: CUDA runs only, at full sizes"}
        ]
    else:
        others = other_benchmarks(args.out.parent, deadline=start + BUDGET_SECONDS)
    result = {
        "benchmark": "gpu",
        "device": device_description(device),
        "cpu_fallback": fallback,
        "tiny": sizes == TINY,
        "sizes": asdict(sizes),
        "torch": torch.__version__,
        "figures": figures,
        "other_benchmarks": others,
        "statistic": "median",
        "seconds": round(time.monotonic() - start, 1),
        "load_average": load_average(),
    }
    print_table(result)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
