"""Teacher cache, step by step: one training step of each method with stored and with live teacher outputs.

Where `bench.speed.teacher_cache` times whole jobs, which a busy machine skews, this times single training
steps of the same student, taken in turn (response, then each method stored and live, repeated), so a
change in the machine's load hits every side alike. Teacher: MiniLM-L6 with a new 3-class head; student:
its layers 0, 2 and 4; 32 real tweets padded to the longest; the engine's own methods, store and
precision. Ratios are to `response` KD with stored logits; the target is at most 1.2 for each method
with its stored outputs. Writes `bench/results/teacher_cache_steps.json`.

    python -m bench.speed.teacher_cache_steps
    python -m bench.speed.teacher_cache_steps --repeats 9
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from app.cli.quickstart.tweets import load_tweets
from bench.paths import RESULTS
from bench.result_file import write_result
from bench.speed.mfu import cpu_description, load_average
from bench.speed.teacher_cache import METHODS, TARGET_RATIO, build_teacher
from distillery.jobspec import JobSpec
from engine.batching import EXAMPLE_INDEX
from engine.callbacks import Callbacks
from engine.methods import MethodContext, get_method_class
from engine.methods.teacher import TeacherMethod
from engine.models import student_from_layers
from engine.teacher_cache import TeacherCacheConfig, prepare_teacher_outputs
from engine.training.precision import choose_precision

BATCH = 32


def tweet_batch(teacher_dir: Path) -> dict[str, torch.Tensor]:
    """32 real tweets, tokenized to at most 64 tokens and padded to the longest."""
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    texts = [row["text"] for row in load_tweets()[:BATCH]]
    batch = dict(tokenizer(texts, truncation=True, max_length=64, padding=True, return_tensors="pt"))
    batch["labels"] = torch.arange(BATCH) % 3
    return batch


def method_for(name: str, teacher: Any, student: Any) -> TeacherMethod:
    """The engine's implementation of a method (`response` or one of METHODS), on these models."""
    options = {"type": "response"} if name == "response" else METHODS[name]
    spec = JobSpec.model_validate(
        {"teacher": {"path": "t"}, "data": {"train_file": "f"}, "method": {"temperature": 4.0, **options}}
    ).method
    context = MethodContext("sequence_classification", student, teacher, lambda seed: student, 3)
    method = get_method_class(spec.type)(spec, context)
    assert isinstance(method, TeacherMethod)
    return method


def attach_store(
    method: TeacherMethod, batch: dict[str, torch.Tensor], teacher_dir: Path, work: Path
) -> None:
    """Run the method's teacher pass over the batch's examples into a real store, and read from it."""
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    columns: dict[str, Any] = {
        name: [row[:n] for row, n in zip(batch[name].tolist(), lengths, strict=True)]
        for name in ("input_ids", "attention_mask", "token_type_ids")
        if name in batch
    }
    table: dict[str, Any] = {**columns, "labels": batch["labels"].tolist(), "length": lengths}
    dataset = datasets.Dataset.from_dict(table)
    teacher_pass = method.teacher_pass_for(teacher_dir)
    stored, _ = prepare_teacher_outputs(
        teacher_pass,
        {"train": dataset},
        mode="on",
        config=TeacherCacheConfig(work),
        scratch_dir=work,
        planned_visits=0,
        callbacks=Callbacks(),
    )
    assert stored is not None
    method.attach_stored_outputs(stored.lookup("train"))


def step_runner(method: TeacherMethod, batch: dict[str, torch.Tensor], autocast: Any) -> Callable[[], float]:
    """A function timing one forward, loss and backward of the method on the batch."""

    def step() -> float:
        started = time.perf_counter()
        with autocast():
            loss, _ = method.training_loss(batch)
        loss.backward()
        method.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    return step


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Median step times, the sides taken in turn."""
    teacher_dir = build_teacher(args.work_dir / "teacher")
    batch = tweet_batch(teacher_dir)
    indexed = {**batch, EXAMPLE_INDEX: torch.arange(BATCH)}
    precision = choose_precision("auto", torch.device("cpu"))
    runs: dict[str, Callable[[], float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in ["response", *args.methods]:
            eager = name == "attention"
            teacher = (
                AutoModelForSequenceClassification.from_pretrained(
                    teacher_dir, attn_implementation="eager" if eager else "sdpa"
                )
                .eval()
                .requires_grad_(False)
            )
            source = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
            student = student_from_layers(
                source, [0, 2, 4], task="sequence_classification", eager=eager, seed=0
            )
            method = method_for(name, teacher, student)
            method.train()
            live = step_runner(method, batch, precision.autocast)
            attach_store(method, batch, teacher_dir, Path(scratch) / name)
            runs[f"{name}/stored"] = step_runner(method, indexed, precision.autocast)
            if name != "response":
                runs[f"{name}/live"] = live
        times: dict[str, list[float]] = {key: [] for key in runs}
        for run in runs.values():
            run()  # warm-up
        for _ in range(args.repeats):
            for key, run in runs.items():
                times[key].append(run())
    medians = {key: statistics.median(values) for key, values in times.items()}
    response = medians["response/stored"]
    return {
        "benchmark": "teacher_cache_steps",
        "cpu": cpu_description(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": precision.precision,
        "load_average_after": load_average(),
        "repeats": args.repeats,
        "median_seconds": {key: round(value, 4) for key, value in medians.items()},
        "ratio_to_response": {key: round(value / response, 3) for key, value in medians.items()},
        "target": f"each method with stored outputs <= {TARGET_RATIO} x response",
        "met": all(medians[f"{name}/stored"] <= TARGET_RATIO * response for name in args.methods),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--work-dir", type=Path, default=Path("var/bench-teacher-cache"))
    parser.add_argument("--out", type=Path, default=RESULTS / "teacher_cache_steps.json")
    args = parser.parse_args()
    result = measure(args)
    table = Table(title=f"One training step, {result['precision']}, batch {BATCH} tweets")
    for column in ("run", "median s", "x response"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for key, value in result["median_seconds"].items():
        table.add_row(key, f"{value:.3f}", f"{result['ratio_to_response'][key]:.2f}")
    Console().print(table)
    print(f"target: {result['target']}: {'met' if result['met'] else 'MISSED'}")
    write_result(result, args.out)


if __name__ == "__main__":
    main()
