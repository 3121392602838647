"""The causal-LM demo's GKD student as a recipe sweep over GKD's `beta` and `lmbda`.

The same chats, tokenizer, 4-layer teacher and 2-layer student as `bench.lm.demo`; the GKD student's
spec is the sweep's base, and the service runs one trial per point of a grid (beta: 0 forward KL,
0.5 the generalised JSD, TRL's default, 1 reverse KL; lmbda: the share of on-policy batches) with no
pruning, picks the lowest eval perplexity, measures it once on the test split and runs one control
from the same initialisation with the same steps. Writes `bench/results/lm_gkd_sweep.json`.

    python -m bench.lm.sweep            # beta 0, 0.5, 1 x lmbda 0, 0.5: 6 trials
    python -m bench.lm.sweep --quick    # 1,000 train tweets, one epoch per job: checks the pipeline
"""

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.demo.comparison import Datasets, job_seconds, run_to_end, upload
from bench.lm.demo import QUICK, Scale, job_specs, prepare
from bench.paths import RESULTS
from bench.result_file import cpu_facts, uptime, write_result
from bench.service.embedded import embedded_service
from bench.sweep.follow import follow_sweep
from bench.sweep.summary import format_trials, summarize_sweep
from distillery.client import DistilleryClient

GRID: dict[str, Any] = {"method.beta": [0.0, 0.5, 1.0], "method.lmbda": [0.0, 0.5]}


def sweep_body(base: dict[str, Any], search: dict[str, Any]) -> dict[str, Any]:
    """The `POST /v1/sweeps` body: every grid point trained in full, perplexity on eval the objective."""
    points = 1
    for choices in search.values():
        points *= len(choices)
    return {
        "name": "lm-gkd-beta-lmbda",
        "base": {**base, "control": False},
        "search": search,
        "sampler": "grid",
        "pruner": "none",
        "budget": {"max_trials": points, "max_parallel": 1},
        "objective": {"metric": "perplexity", "direction": "minimize"},
        "control": "same_init",
        "seed": 0,
    }


def run_gkd_sweep(
    client: DistilleryClient, files: Datasets, scale: Scale, downloads: Path, console: Console
) -> dict[str, Any]:
    """Train the teacher, run the GKD sweep to its end; the sweep's summary with the teacher's job."""
    teacher = run_to_end(client, job_specs(files, None, scale)["teacher"], "lm-teacher", downloads, console)
    base = job_specs(files, teacher["id"], scale)["gkd"]
    started = time.monotonic()
    sweep = client.create_sweep(sweep_body(base, GRID))
    ended = follow_sweep(client, sweep["id"], console)
    summary = summarize_sweep(client, ended, wall_seconds=time.monotonic() - started)
    summary["teacher"] = {"job": teacher["id"], "seconds": job_seconds(teacher)}
    return summary


def format_best(summary: dict[str, Any]) -> str:
    """The best grid point's test perplexity against the teacher's and the control's, and the verdict."""
    best = summary["best"]
    verdict = (best.get("verdict") or {}).get("verdict")
    return (
        f"best: trial {best.get('number')} {best.get('params')}: "
        f"test perplexity {perplexity(best.get('test'))} "
        f"(teacher {perplexity(best.get('teacher_test'))}, control {perplexity(best.get('control_test'))}); "
        f"gain {best.get('gain')}; verdict {verdict}"
    )


def perplexity(metrics: dict[str, Any] | None) -> str:
    """A metrics dict's perplexity to two decimals, or `-`."""
    return "-" if not metrics or metrics.get("perplexity") is None else f"{metrics['perplexity']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 train tweets and one epoch per job")
    parser.add_argument("--train-rows", type=int, help="train tweets (default 4,000)")
    parser.add_argument(
        "--student-epochs", type=int, help="epochs of every trial and the control (default 2)"
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=8768)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    scale = QUICK if args.quick else Scale()
    if args.train_rows is not None:
        scale = replace(scale, train_rows=args.train_rows)
    if args.student_epochs is not None:
        scale = replace(scale, student_epochs=args.student_epochs)
    data_dir = (args.data_dir or Path("var/lm-sweep-quick" if args.quick else "var/lm-sweep")).resolve()
    logging.basicConfig(level=logging.WARNING)
    console, started, load_before = Console(), time.monotonic(), uptime()
    _, chats = prepare(data_dir, scale)
    with embedded_service(data_dir, port=args.port, log_path=data_dir / "service.log") as client:
        files = upload(client, chats["train"], chats["eval"], chats["test"])
        summary = run_gkd_sweep(client, files, scale, data_dir / "students", console)
    summary["command"] = " ".join(["python -m bench.lm.sweep", *sys.argv[1:]])
    summary["total_wall_seconds"] = round(time.monotonic() - started, 1)
    summary["scale"] = scale.__dict__
    summary["machine"] = {**cpu_facts(), "load_before": load_before, "load_after": uptime()}
    console.print(format_trials(summary))
    console.print(format_best(summary))
    out = args.out or RESULTS / ("lm_gkd_sweep_quick.json" if args.quick else "lm_gkd_sweep.json")
    write_result(summary, out, console=console)


if __name__ == "__main__":
    main()
