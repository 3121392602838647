"""The tweets demo as a recipe sweep: the same teacher, data and 3-layer student, with the response
method's temperature, alpha, learning rate and epochs searched by the service (`POST /v1/sweeps`).

The teacher is fine-tuned as in the demo; the sweep's trials distil it with TPE choosing each recipe and
ASHA stopping poor trials early, one at a time. The eval split picks the best trial; the sweep measures
it once on the test split and runs one control from the base model's layers (the demo's control) with
the same steps. Then the demo's own recipe is distilled on the same data with its control, so the
sweep's gain is set against the defaults' measured in the same run. Writes
`bench/results/sweep_demo.json`.

    python -m bench.sweep_demo                  # 12 trials on 2k labeled tweets, 500 eval, 2k test
    python -m bench.sweep_demo --skip-defaults  # the sweep alone, against the recorded defaults
    python -m bench.sweep_demo --quick          # 3 trials on a few hundred tweets: checks the pipeline
"""

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.demo.classifier import STUDENT_LAYERS, data_facts, prepare_tweets
from bench.demo.comparison import Datasets, Recipe, job_seconds, job_specs, run_to_end, summarize, upload
from bench.paths import RESULTS
from bench.result_file import cpu_facts, uptime, write_result
from bench.service.embedded import embedded_service
from bench.sweep.compare import defaults_row, format_comparison, recorded_defaults
from bench.sweep.follow import follow_sweep
from bench.sweep.summary import format_trials, summarize_sweep
from distillery.client import DistilleryClient

# What matters for `response` KD of a classifier: the soft targets' temperature and weight, the
# learning rate and how long the student trains. Three epochs is the demo's default and its longest.
RESPONSE_SEARCH: dict[str, Any] = {
    "method.temperature": {"low": 1.0, "high": 8.0, "log": True},
    "method.alpha": {"low": 0.1, "high": 0.9},
    "training.learning_rate": {"low": 3e-5, "high": 3e-4, "log": True},
    "training.epochs": {"low": 1, "high": 3},
}


@dataclass(frozen=True)
class Plan:
    """The data, the demo's recipe (the base of every trial) and the sweep's search and budget."""

    recipe: Recipe = field(default_factory=lambda: Recipe(student_layers=STUDENT_LAYERS))
    search: dict[str, Any] | str = field(default_factory=lambda: dict(RESPONSE_SEARCH))
    max_trials: int = 12
    # Twice an epoch of 2,000 tweets in batches of 32, so ASHA can stop a trial within its first epoch.
    eval_every_steps: int | None = 32
    control: str = "base"
    measure_defaults: bool = True
    # Half the demo's labeled tweets and eval split, so that 12 trials fit in 30 minutes on a shared
    # 2-core machine; the test split is the demo's.
    train_rows: int = 2000
    eval_rows: int = 500
    test_rows: int = 2000
    transfer_rows: int = 0


QUICK = Plan(
    recipe=Recipe(student_layers=STUDENT_LAYERS, teacher_epochs=1, student_epochs=1),
    search={"method.temperature": {"low": 1.0, "high": 8.0, "log": True}, "method.alpha": [0.3, 0.7]},
    max_trials=3,
    eval_every_steps=7,
    train_rows=400,
    eval_rows=200,
    test_rows=400,
)


def sweep_body(base: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """The `POST /v1/sweeps` body: the distilled student's spec as the base, and the plan's search."""
    training = dict(base["training"])
    if plan.eval_every_steps:
        training["eval_every_steps"] = plan.eval_every_steps
    return {
        "name": "tweets-response",
        "base": {**base, "training": training},
        "search": plan.search,
        "sampler": "tpe",
        "pruner": "asha",
        "budget": {"max_trials": plan.max_trials, "max_parallel": 1},
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "control": plan.control,
        "seed": 0,
    }


@dataclass(frozen=True)
class Run:
    """What the demo's jobs start from: the base model, the uploaded splits, the plan, where students go."""

    base_model: str
    data: Datasets
    plan: Plan
    downloads: Path
    # A succeeded teacher job of an earlier run on the same data directory, to distil from again.
    teacher_job: str | None = None


def run_sweep_demo(client: DistilleryClient, run: Run, console: Console) -> dict[str, Any]:
    """Fine-tune the teacher and run the sweep to its end; the sweep's summary with the teacher's job."""
    recipe = run.plan.recipe
    if run.teacher_job:
        teacher = client.get_job(run.teacher_job)
    else:
        teacher_spec = job_specs(run.base_model, None, run.data, recipe)["teacher"]
        teacher = run_to_end(client, teacher_spec, "teacher", run.downloads, console)
    base = job_specs(run.base_model, teacher["id"], run.data, recipe)["distilled"]
    started = time.monotonic()
    sweep = client.create_sweep(sweep_body(base, run.plan))
    summary = summarize_sweep(
        client, follow_sweep(client, sweep["id"], console), wall_seconds=time.monotonic() - started
    )
    summary["teacher"] = {"job": teacher["id"], "seconds": job_seconds(teacher)}
    summary["recorded_defaults"] = recorded_defaults()
    summary["recipe"] = recipe.__dict__
    return summary


def measure_defaults(
    client: DistilleryClient, run: Run, console: Console, *, teacher_job: str
) -> dict[str, Any]:
    """The demo's own recipe distilled from the sweep's teacher on the same data, and its control."""
    teacher = client.get_job(teacher_job)
    specs = job_specs(run.base_model, teacher_job, run.data, run.plan.recipe)
    distilled = run_to_end(client, specs["distilled"], "defaults-distilled", run.downloads, console)
    control = run_to_end(client, specs["control"], "defaults-control", run.downloads, console)
    return defaults_row(summarize(teacher, distilled, control))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 trials on a few hundred tweets, one epoch each"
    )
    parser.add_argument("--max-trials", type=int, help="trials of the sweep (default 12, 3 with --quick)")
    parser.add_argument(
        "--transfer-rows", type=int, help="unlabeled tweets the teacher labels for every trial (default 0)"
    )
    parser.add_argument("--max-epochs", type=int, help="the longest trial in epochs (default 3)")
    parser.add_argument("--teacher-job", help="distil from this succeeded teacher job of an earlier run")
    parser.add_argument(
        "--skip-defaults", action="store_true", help="do not distil the demo's own recipe after the sweep"
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args()


def plan_from(args: argparse.Namespace) -> Plan:
    """The plan the options ask for."""
    plan = QUICK if args.quick else Plan()
    if args.max_trials is not None:
        plan = replace(plan, max_trials=args.max_trials)
    if args.max_epochs is not None and isinstance(plan.search, dict):
        plan = replace(plan, search={**plan.search, "training.epochs": {"low": 1, "high": args.max_epochs}})
    if args.transfer_rows is not None:
        plan = replace(plan, transfer_rows=args.transfer_rows)
    return replace(plan, measure_defaults=not args.skip_defaults)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    console, plan = Console(), plan_from(args)
    data_dir = (args.data_dir or Path("var/sweep-demo-quick" if args.quick else "var/sweep-demo")).resolve()
    started, load_before = time.monotonic(), uptime()
    minilm, splits = prepare_tweets(
        data_dir,
        train_rows=plan.train_rows,
        eval_rows=plan.eval_rows,
        test_rows=plan.test_rows,
        transfer_rows=plan.transfer_rows,
        console=console,
    )
    out = args.out or RESULTS / ("sweep_demo_quick.json" if args.quick else "sweep_demo.json")
    facts = {"data": data_facts(splits), "machine": {**cpu_facts(), "load_before": load_before}}
    with embedded_service(data_dir, port=args.port, log_path=data_dir / "service.log") as client:
        transfer = splits.transfer.path if splits.transfer else None
        data = upload(client, splits.train.path, splits.eval.path, splits.test.path, transfer)
        run = Run(minilm, data, plan, data_dir / "students", teacher_job=args.teacher_job)
        summary = {**run_sweep_demo(client, run, console), **facts}
        summary["command"] = " ".join(["python -m bench.sweep_demo", *sys.argv[1:]])
        console.print(format_trials(summary))
        # Written now, so the sweep's figures are kept whatever happens to the defaults' jobs.
        write_result(summary, out, console=console)
        if plan.measure_defaults:
            summary["defaults"] = measure_defaults(
                client, run, console, teacher_job=summary["teacher"]["job"]
            )
    summary["total_wall_seconds"] = round(time.monotonic() - started, 1)
    summary["machine"]["load_after"] = uptime()
    console.print(format_comparison(summary))
    write_result(summary, out, console=console)
