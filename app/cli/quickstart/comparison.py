"""Teacher, distilled student and control as three jobs on a running service, and the table comparing them.

The demo runs it on MiniLM-L6 and real tweets; a test runs it on tiny models so CI guards the pipeline.
"""

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from distillery.cli.follow import follow_job, print_outcome
from distillery.client import DistilleryClient


@dataclass(frozen=True)
class Recipe:
    """Hyperparameters of the three jobs; student and control share everything but the teacher."""

    student_layers: list[int]
    teacher_epochs: int = 3
    student_epochs: int = 3
    # With a transfer set the distilled student sees more rows per epoch, so it may take fewer epochs.
    distilled_epochs: int | None = None
    teacher_learning_rate: float = 1e-4
    student_learning_rate: float = 1e-4
    batch_size: int = 32
    max_length: int = 64
    seed: int = 0
    distillation: dict[str, Any] = field(
        default_factory=lambda: {"type": "response", "temperature": 2.0, "alpha": 0.5}
    )

    def training(self, *, epochs: int, learning_rate: float) -> dict[str, Any]:
        """The `training` block of a job spec."""
        return {
            "epochs": epochs,
            "batch_size": self.batch_size,
            "learning_rate": learning_rate,
            "warmup_ratio": 0.06,
            "weight_decay": 0.01,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Datasets:
    """Uploaded file ids and the columns the jobs read."""

    train_file: str
    eval_file: str
    test_file: str | None = None
    transfer_file: str | None = None

    def spec(self, max_length: int, *, with_transfer: bool = False) -> dict[str, Any]:
        """The `data` block of a job spec; the transfer set only where a teacher labels it."""
        data = {
            "train_file": self.train_file,
            "eval_file": self.eval_file,
            "text_column": "text",
            "label_column": "label",
            "max_length": max_length,
        }
        if self.test_file:
            data["test_file"] = self.test_file
        if with_transfer and self.transfer_file:
            data["transfer_file"] = self.transfer_file
        return data


def upload(
    client: DistilleryClient,
    train: Path,
    evaluation: Path,
    test: Path | None = None,
    transfer: Path | None = None,
) -> Datasets:
    """Upload the splits through `POST /v1/files`."""

    def file_id(path: Path | None) -> str | None:
        return client.upload_file(path)["id"] if path else None

    return Datasets(
        client.upload_file(train)["id"],
        client.upload_file(evaluation)["id"],
        file_id(test),
        file_id(transfer),
    )


def job_specs(base_model: str, teacher_job: str | None, data: Datasets, recipe: Recipe) -> dict[str, Any]:
    """The three specs. The teacher fine-tunes the base model; the distilled student starts from the
    fine-tuned teacher's layers (DistilBERT-style); the control starts from the same layers of the base
    model, since starting from the teacher's weights would be learning from the teacher."""
    data_spec = data.spec(recipe.max_length)
    student_training = recipe.training(
        epochs=recipe.student_epochs, learning_rate=recipe.student_learning_rate
    )
    distilled_training = recipe.training(
        epochs=recipe.distilled_epochs or recipe.student_epochs, learning_rate=recipe.student_learning_rate
    )
    teacher_ref = {"job": teacher_job} if teacher_job else {"path": base_model}
    return {
        "teacher": {
            "student": {"init": "pretrained", "model": {"path": base_model}},
            "data": data_spec,
            "method": {"type": "supervised"},
            "training": recipe.training(
                epochs=recipe.teacher_epochs, learning_rate=recipe.teacher_learning_rate
            ),
        },
        "distilled": {
            "teacher": teacher_ref,
            "student": {"init": "teacher_layers", "layers": recipe.student_layers},
            "data": data.spec(recipe.max_length, with_transfer=True),
            "method": recipe.distillation,
            "training": distilled_training,
        },
        "control": {
            "student": {
                "init": "teacher_layers",
                "model": {"path": base_model},
                "layers": recipe.student_layers,
            },
            "data": data_spec,
            "method": {"type": "supervised"},
            "training": student_training,
        },
    }


def run_to_end(
    client: DistilleryClient, spec: dict[str, Any], name: str, downloads: Path, console: Console
) -> dict[str, Any]:
    """Post a job, show its progress until it ends, download its student; returns the finished job."""
    job = client.create_job(spec, name=name)
    return finish_job(client, job["id"], name, downloads, console)


def finish_job(
    client: DistilleryClient, job_id: str, name: str, downloads: Path, console: Console
) -> dict[str, Any]:
    """Show a posted job's progress until it ends, download its student; returns the finished job."""
    console.print(f"[bold]{name}[/]: job {job_id}")
    job = follow_job(client, job_id, console, poll=2.0)
    print_outcome(console, job)
    if job["status"] != "succeeded":
        raise RuntimeError(f"{name} ended {job['status']}: {job['error']}")
    student = client.download_student(job["id"], downloads / name)
    console.print(f"{name}: student in {student}")
    return job


def run_comparison(
    client: DistilleryClient,
    *,
    base_model: str,
    data: Datasets,
    recipe: Recipe,
    downloads: Path,
    console: Console,
    extra_seeds: Sequence[int] = (),
) -> dict[str, Any]:
    """Run teacher, distilled student and control in turn; returns the summary `summarize` builds.

    Each of `extra_seeds` trains another distilled student and control from the same teacher with that
    seed (initialisation of new parts, batch order, dropout), so the gain can be given with its spread.
    """
    teacher, distilled, control = run_three_jobs(
        client, lambda teacher_job: job_specs(base_model, teacher_job, data, recipe), downloads, console
    )
    summary = summarize(teacher, distilled, control)
    pairs = [(recipe.seed, distilled, control)]
    for seed in extra_seeds:
        specs = job_specs(base_model, teacher["id"], data, replace(recipe, seed=seed))
        pairs.append(
            (
                seed,
                run_to_end(client, specs["distilled"], f"distilled-seed{seed}", downloads, console),
                run_to_end(client, specs["control"], f"control-seed{seed}", downloads, console),
            )
        )
    summary["seeds"] = seed_gains(pairs, summary["split"])
    return summary


def seed_gains(pairs: list[tuple[int, dict[str, Any], dict[str, Any]]], split: str) -> dict[str, Any]:
    """Accuracy of the distilled student and the control for each seed, and the gain's mean and spread."""
    runs = []
    for seed, distilled, control in pairs:
        student = distilled["result"]["student"][split]["accuracy"]
        baseline = control["result"]["student"][split]["accuracy"]
        runs.append(
            {
                "seed": seed,
                "student_accuracy": student,
                "control_accuracy": baseline,
                "gain_points": 100 * (student - baseline),
            }
        )
    gains = [run["gain_points"] for run in runs]
    return {
        "runs": runs,
        "gain_mean_points": statistics.fmean(gains),
        "gain_stdev_points": statistics.stdev(gains) if len(gains) > 1 else None,
    }


def run_three_jobs(
    client: DistilleryClient,
    build_specs: Callable[[str | None], dict[str, Any]],
    downloads: Path,
    console: Console,
    prefix: str = "",
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The teacher job first, then the distilled student (which reads the teacher job) and the control."""
    teacher = run_to_end(client, build_specs(None)["teacher"], f"{prefix}teacher", downloads, console)
    specs = build_specs(teacher["id"])
    distilled = run_to_end(client, specs["distilled"], f"{prefix}distilled", downloads, console)
    control = run_to_end(client, specs["control"], f"{prefix}control", downloads, console)
    return teacher, distilled, control


def reported_split(rows: dict[str, dict[str, Any]]) -> str:
    """`test` when the jobs had a held-out test file, else `eval` (which also chose their checkpoints)."""
    return "test" if all(side.get("test") for side in rows.values()) else "eval"


def summarize(teacher: dict[str, Any], distilled: dict[str, Any], control: dict[str, Any]) -> dict[str, Any]:
    """The comparison, from the jobs' reports: the distilled job measured teacher and student side by side."""
    rows = report_rows(distilled, control)
    split = reported_split(rows)
    accuracy = {name: side[split]["accuracy"] for name, side in rows.items()}
    return {
        "rows": rows,
        "split": split,
        "teacher_accuracy": accuracy["teacher"],
        "student_accuracy": accuracy["distilled student"],
        "control_accuracy": accuracy["control student"],
        "retention": accuracy["distilled student"] / accuracy["teacher"],
        "gain_over_control_points": 100 * (accuracy["distilled student"] - accuracy["control student"]),
        "speedup": distilled["result"]["latency"]["speedup"],
        **job_facts(teacher, distilled, control),
    }


def report_rows(distilled: dict[str, Any], control: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Teacher and student sides of the distilled job's report, and the control's student side."""
    report = distilled["result"]
    return {
        "teacher": report["teacher"],
        "distilled student": report["student"],
        "control student": control["result"]["student"],
    }


def job_facts(teacher: dict[str, Any], distilled: dict[str, Any], control: dict[str, Any]) -> dict[str, Any]:
    """The three jobs' ids and how long each ran."""
    jobs = {"teacher": teacher, "distilled": distilled, "control": control}
    return {
        "jobs": {name: job["id"] for name, job in jobs.items()},
        "seconds": {name: job_seconds(job) for name, job in jobs.items()},
    }


def job_seconds(job: dict[str, Any]) -> float | None:
    """How long the job ran on its worker."""
    if job.get("started_at") and job.get("finished_at"):
        return round(job["finished_at"] - job["started_at"], 1)
    return None


def format_table(summary: dict[str, Any]) -> str:
    """The summary as a fixed-width table with the headline figures underneath."""
    split = summary["split"]
    header = (
        f"{'model':<18}{'params':>9}{'non-emb':>9}{'MB':>7}{'acc':>8}{'macro-F1':>10}{'latency ms':>12}"
        f"   ({split} split)"
    )
    lines = [header, "-" * len(header)]
    for name, side in summary["rows"].items():
        params = side["parameters"]
        latency = side.get("latency_ms")
        lines.append(
            f"{name:<18}{params['total'] / 1e6:>8.1f}M{params['without_embeddings'] / 1e6:>8.1f}M"
            f"{side['size_on_disk_bytes'] / 1e6:>7.1f}{side[split]['accuracy']:>8.3f}"
            f"{side[split]['macro_f1']:>10.3f}{'-' if latency is None else f'{latency:.1f}':>12}"
        )
    speedup, gain = summary["speedup"], summary["gain_over_control_points"]
    lines.append(
        f"retention {summary['retention']:.1%}, gain over control {gain:+.1f} points"
        + ("" if speedup is None else f", speed-up {speedup:.2f}x")
    )
    seeds = summary.get("seeds")
    if seeds and len(seeds["runs"]) > 1:
        each = ", ".join(f"seed {run['seed']} {run['gain_points']:+.2f}" for run in seeds["runs"])
        lines.append(
            f"gain over {len(seeds['runs'])} seeds: {seeds['gain_mean_points']:+.2f} "
            f"(sd {seeds['gain_stdev_points']:.2f}; {each})"
        )
    return "\n".join(lines)
