"""Packing on the chat demo's data: tokens per second of the engine's training step, packed against padded.

The chat demo's tweets as chats (`bench.lm.demo`), tokenized by the engine (loss on the assistant turns,
max_length 96) with a 4,096-token BPE trained on them; the demo's 2-layer student and 4-layer teacher
(GPT-2, width 256; untrained, as speed does not depend on the weights), trained as the demo's `response`
job is: token-level KD from the teacher's top-64 log-probabilities, stored once in the teacher cache.
The same epoch is batched four ways, each from the same student weights:
- padded and packed, batches grouped by length (`training.group_by_length`, the engine's default);
- padded and packed, batches in random order (`group_by_length: false`).
Each step is the engine's `train_step` plus the making of its batch (packing and its mask included). The
ways take their steps in turn, a few at a time, so a change in the machine's load hits every way alike.
Tokens are the batches' real tokens (padding left out); fill is their share of the positions computed.
Writes `bench/results/lm_packing.json`.

    python -m bench.lm.packing           # 320 chats: 10 batches of 32 each way
    python -m bench.lm.packing --full    # the demo's 4,000 train chats: one epoch (125 batches) each way
    python -m bench.lm.packing --profile # and the ops that take the most time in each way's steps
    python -m bench.lm.packing --chats 960
"""

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from app.cli.quickstart.tweets import write_splits
from bench.lm.bases import install_base_model
from bench.lm.demo import CHAT_TEMPLATE, QUICK, Scale, write_chats
from bench.naive.machine import cpu_model
from bench.paths import RESULTS
from bench.result_file import uptime, write_result
from bench.speed.mfu import load_average
from distillery.jobspec import DataSpec, ResponseMethod, TrainingSpec
from engine.batching import epoch_batch_order, examples_and_tokens, iterate_batches
from engine.callbacks import Callbacks
from engine.distributed.ranks import SINGLE
from engine.distributed.wrap import make_parallel
from engine.lm.data import tokenize_causal_lm
from engine.lm.packed_attention import batch_readers, packing_for
from engine.lm.packing import Packing
from engine.methods import MethodContext
from engine.methods.response import ResponseDistillation
from engine.models import load_tokenizer
from engine.teacher_cache import TeacherCacheConfig, prepare_teacher_outputs
from engine.training.loop import train_step
from engine.training.optimization import build_optimizer, build_scheduler
from engine.training.precision import PrecisionChoice, choose_precision

WAYS = (("padded", True), ("packed", True), ("padded", False), ("packed", False))
STEPS_PER_TURN = 1
DEMO = Scale()
QUICK_ROWS = 320
PROFILED_STEPS, PROFILED_OPS = 2, 12


@dataclass
class Way:
    """One way of batching the epoch: its method (own student and optimiser), batches and tallies."""

    name: str
    method: ResponseDistillation
    batches: Iterator[dict[str, torch.Tensor]]
    step_args: dict[str, Any]
    tallies: dict[str, float] = field(
        default_factory=lambda: {"steps": 0, "examples": 0, "tokens": 0, "positions": 0, "seconds": 0.0}
    )
    losses: list[float] = field(default_factory=list)

    def step(self, *, counted: bool) -> bool:
        """One training step on the next batch, timed with the batch's making; False when none is left."""
        started = time.perf_counter()
        batch = next(self.batches, None)
        if batch is None:
            return False
        terms = train_step(**self.step_args, group=[(batch, 1.0)], step=int(self.tallies["steps"]))
        seconds = time.perf_counter() - started
        if counted:
            examples, tokens = examples_and_tokens(batch)
            for name, value in (("examples", examples), ("tokens", tokens), ("seconds", seconds)):
                self.tallies[name] += value
            self.tallies["positions"] += batch["input_ids"].numel()
            self.losses.append(terms["loss"])
        self.tallies["steps"] += 1
        return True


def chat_data(data_dir: Path, rows: int) -> tuple[datasets.Dataset, PreTrainedTokenizerBase, Path]:
    """The demo's train chats tokenized by the engine, their tokenizer, and the base model's directory."""
    splits = write_splits(data_dir / "datasets", train_rows=rows, eval_rows=QUICK.eval_rows, test_rows=10)
    chats = write_chats(splits, data_dir / "datasets")
    base = data_dir / "models" / "gpt2-chat"
    install_base_model(
        chats["tokenizer"], base, vocab_size=DEMO.vocab_size, layers=DEMO.teacher_layers, width=DEMO.width
    )
    tokenizer = load_tokenizer(base)
    tokenizer.chat_template = CHAT_TEMPLATE
    table = datasets.Dataset.from_json(str(chats["train"]))
    spec = DataSpec(train_file="train", format="chat", max_length=DEMO.max_length)
    train, _ = tokenize_causal_lm(table, spec, tokenizer, "chat")
    return train, tokenizer, base


def demo_models(base: Path) -> tuple[GPT2LMHeadModel, GPT2LMHeadModel]:
    """The demo's 4-layer teacher (frozen) and 2-layer student, from the base model's config, seeded."""
    torch.manual_seed(0)
    teacher = GPT2LMHeadModel(GPT2Config.from_pretrained(base)).eval().requires_grad_(False)
    student = GPT2LMHeadModel(GPT2Config.from_pretrained(base, n_layer=DEMO.student_layers))
    return teacher, student


def response_kd(student: GPT2LMHeadModel, teacher: GPT2LMHeadModel) -> ResponseDistillation:
    """The demo's response job: forward KL on the teacher's top-64 log-probabilities, alpha 0.8."""
    spec = ResponseMethod(temperature=1.0, alpha=0.8, top_k=DEMO.top_k)
    return ResponseDistillation(
        spec, MethodContext("causal_lm", student, teacher, lambda seed: student, None)
    )


def stored_lookup(
    method: ResponseDistillation, train: datasets.Dataset, work_dir: Path, precision: PrecisionChoice
) -> Any:
    """The teacher's outputs for every train chat, computed once (one chat per row) and stored."""
    teacher_dir = work_dir / "teacher"
    method.frozen_teacher.save_pretrained(teacher_dir)
    stored, _ = prepare_teacher_outputs(
        method.teacher_pass_for(teacher_dir, precision=precision.precision, autocast=precision.autocast),
        {"train": train},
        mode="on",
        config=TeacherCacheConfig(work_dir / "cache"),
        scratch_dir=work_dir,
        planned_visits=0,
        callbacks=Callbacks(),
    )
    assert stored is not None
    return stored.lookup("train")


def make_ways(
    train: datasets.Dataset, pad_token_id: int, base: Path, work_dir: Path, precision: PrecisionChoice
) -> list[Way]:
    """The four ways, each with a copy of the same student, its own optimiser, the same stored outputs."""
    teacher, student = demo_models(base)
    lookup = stored_lookup(response_kd(student, teacher), train, work_dir, precision)
    training = TrainingSpec(batch_size=DEMO.batch_size, learning_rate=DEMO.learning_rate, warmup_ratio=0.05)
    lengths = list(train["length"])
    ways = []
    for kind, grouped in WAYS:
        method = response_kd(copy.deepcopy(student), teacher)
        method.attach_stored_outputs(lookup)
        method.train()
        packing: Packing | None = None
        if kind == "packed":
            packing = packing_for(batch_readers(method, teacher), DEMO.max_length)
        order = epoch_batch_order(lengths, DEMO.batch_size, seed=0, epoch=0, group_by_length=grouped)
        optimizer = build_optimizer(method, training)
        step_args = {
            "parallel": make_parallel(method, "single", SINGLE),
            "ranks": SINGLE,
            "optimizer": optimizer,
            "scheduler": build_scheduler(optimizer, training, len(order)),
            "training": training,
            "device": torch.device("cpu"),
            "autocast": precision.autocast,
        }
        batches = iterate_batches(train, order, pad_token_id=pad_token_id, with_index=True, packing=packing)
        name = f"{kind}, {'grouped by length' if grouped else 'random order'}"
        ways.append(Way(name, method, batches, step_args))
    return ways


def run_ways(ways: list[Way], *, profile: bool) -> dict[str, dict[str, Any]]:
    """One uncounted step of each way (one-off costs), then STEPS_PER_TURN steps each in turn to the end;
    with `profile`, first PROFILED_STEPS uncounted steps of every way under the profiler."""
    for way in ways:
        way.step(counted=False)
    profiles = {way.name: profile_steps(way, PROFILED_STEPS) for way in ways} if profile else {}
    active = list(ways)
    while active:
        for way in list(active):
            for _ in range(STEPS_PER_TURN):
                if not way.step(counted=True):
                    active.remove(way)
                    break
    return profiles


def profile_steps(way: Way, steps: int) -> dict[str, Any]:
    """The FLOPs torch runs in `steps` uncounted steps of a way, and the ops that take most of their time
    (self CPU time), per step."""
    with (
        torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler,
        FlopCounterMode(display=False) as flops,
    ):
        for _ in range(steps):
            way.step(counted=False)
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    top = sorted(events, key=lambda event: -event.self_cpu_time_total)[:PROFILED_OPS]
    ops = [
        {
            "op": event.key,
            "ms_per_step": round(event.self_cpu_time_total / 1000 / steps, 1),
            "share": round(event.self_cpu_time_total / total, 3),
        }
        for event in top
    ]
    return {"gflop_per_step": round(flops.get_total_flops() / 1e9 / steps, 2), "ops": ops}


def way_result(way: Way, padded: Way) -> dict[str, Any]:
    """A way's figures, and its speed against the padded way with the same batch order."""
    tallies = way.tallies
    rate = tallies["tokens"] / tallies["seconds"]
    return {
        "way": way.name,
        "steps": len(way.losses),
        "examples": int(tallies["examples"]),
        "tokens": int(tallies["tokens"]),
        "positions": int(tallies["positions"]),
        "fill": round(tallies["tokens"] / tallies["positions"], 4),
        "seconds": round(tallies["seconds"], 2),
        "tokens_per_second": round(rate, 1),
        "vs_padded": round(rate / (padded.tallies["tokens"] / padded.tallies["seconds"]), 3),
        "mean_loss": round(sum(way.losses) / len(way.losses), 4),
    }


def print_table(results: list[dict[str, Any]], caption: str) -> None:
    """Tokens per second and fill of each way, and the speed-up of packing over padding."""
    table = Table(title="Training steps on the chat demo's data: packed against padded", caption=caption)
    for column in ("way", "steps", "tokens", "fill", "tokens/s", "vs padded", "mean loss"):
        table.add_column(column, justify="left" if column == "way" else "right")
    for row in results:
        table.add_row(
            row["way"],
            str(row["steps"]),
            f"{row['tokens']:,}",
            f"{row['fill']:.1%}",
            f"{row['tokens_per_second']:,.0f}",
            f"{row['vs_padded']:.2f}x",
            f"{row['mean_loss']:.3f}",
        )
    Console().print(table)


def print_profiles(profiles: dict[str, dict[str, Any]]) -> None:
    """Each way's FLOPs and costliest ops per step (self CPU milliseconds)."""
    console = Console()
    for name, profile in profiles.items():
        ops = profile["ops"][:6]
        listed = ", ".join(f"{op['op']} {op['ms_per_step']:.0f} ms ({op['share']:.0%})" for op in ops)
        console.print(f"[bold]{name}[/bold]: {profile['gflop_per_step']} GFLOP per step; {listed}")


def command_options(argv: list[str]) -> list[str]:
    """The options that change what is measured: all but where the result is written."""
    kept: list[str] = []
    skip = False
    for option in argv:
        if skip or option == "--out" or option.startswith("--out="):
            skip = option == "--out"
            continue
        kept.append(option)
    return kept


def main() -> None:
    """Parse the options, prepare the data, run the four ways side by side, print and write the result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="the demo's 4,000 train chats, one epoch")
    parser.add_argument(
        "--chats", type=int, help=f"train chats (default {QUICK_ROWS}, --full {DEMO.train_rows})"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument(
        "--profile", action="store_true", help=f"profile {PROFILED_STEPS} uncounted steps of each way first"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "lm_packing.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    precision = choose_precision(args.precision, torch.device("cpu"))
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="lm-packing-") as scratch:
        work_dir = Path(scratch)
        rows = args.chats or (DEMO.train_rows if args.full else QUICK_ROWS)
        train, tokenizer, base = chat_data(work_dir, rows)
        ways = make_ways(train, int(tokenizer.pad_token_id), base, work_dir, precision)
        profiles = run_ways(ways, profile=args.profile)
    padded = {way.name.split(", ")[1]: way for way in ways if way.name.startswith("padded")}
    results = [way_result(way, padded[way.name.split(", ")[1]]) for way in ways]
    machine = {
        "cpu_model": cpu_model(),
        "threads": args.threads,
        "precision": precision.precision,
        "precision_reason": precision.reason,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    caption = f"{machine['cpu_model']}, {args.threads} threads, {precision.precision}; {uptime()}"
    print_table(results, caption)
    print_profiles(profiles)
    record = {
        "command": " ".join(["python -m bench.lm.packing", *command_options(sys.argv[1:])]),
        "train_chats": len(train),
        "scale": {"batch_size": DEMO.batch_size, "max_length": DEMO.max_length, "top_k": DEMO.top_k},
        "results": results,
        "profiles": profiles,
        "machine": machine,
        "load_average": {"before": load_before, "after": load_average()},
        "uptime": uptime(),
    }
    write_result(record, args.out)


if __name__ == "__main__":
    main()
