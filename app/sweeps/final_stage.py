"""After the trials: the best one measured once on the test split, one control, and the sweep's report."""

import logging
import statistics
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.jobs.control_base import control_base
from app.jobs.control_report import PRIMARY_METRIC, measures
from app.jobs.models import Job, JobStatus
from app.jobs.verdict import Comparison, judge
from app.sweeps.trials import PRUNED, objective_value, trial_status
from distillery.jobspec import JobSpec
from distillery.jobspec.sweep import LOWER_IS_BETTER, SweepSpec

logger = logging.getLogger(__name__)


def test_spec(spec: SweepSpec, best: Job) -> JobSpec | None:
    """An evaluation-only job of the best trial's student on the base's test file; None without one."""
    if spec.base.data.test_file is None:
        return None
    body = JobSpec.model_validate(best.spec).model_dump(mode="json")
    body["data"]["test_file"] = spec.base.data.test_file
    body["student"] = {"init": "pretrained", "model": {"job": best.id}}
    body["training"].update(epochs=0, max_steps=None, teacher_cache="auto")
    try:
        return JobSpec.model_validate(body)
    except ValidationError as error:
        logger.warning("sweep: no test evaluation of job %s: %s", best.id, error.errors()[0]["msg"])
        return None


def control_spec(spec: SweepSpec, best: Job, *, session: Session, tenant: str) -> JobSpec | None:
    """The control of the best recipe, with the test file and the same steps; None with control none."""
    if spec.control == "none":
        return None
    body = JobSpec.model_validate(best.spec).model_dump(mode="json")
    body["data"]["test_file"] = spec.base.data.test_file
    body["student"]["base"] = (
        spec.base.student.base.model_dump(mode="json") if spec.base.student.base else None
    )
    trial = spec.controlled(JobSpec.model_validate(body))
    return trial.control_spec(base=control_base(session, tenant=tenant, spec=trial))


def _metrics(result: dict[str, Any] | None, who: str, split: str) -> dict[str, float]:
    """The numeric metrics of the student or teacher on one split of a job's report."""
    summary = ((result or {}).get(who) or {}).get(split) or {}
    return {k: float(v) for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _stderr(result: dict[str, Any] | None, who: str, split: str, metric: str) -> float | None:
    """The standard error of a metric where the report carries one."""
    value = (((result or {}).get(who) or {}).get("stderr") or {}).get(split, {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _hours(jobs: list[Job]) -> tuple[float, float]:
    """CPU and GPU hours the sweep's jobs ran, each job's time times its devices."""
    cpu = gpu = 0.0
    for job in jobs:
        if job.started_at is None or job.finished_at is None:
            continue
        hours = max(0.0, (job.finished_at - job.started_at).total_seconds()) / 3600
        device = str(((job.result or {}).get("latency") or {}).get("device") or job.accelerator or "")
        on_gpu = device.startswith("cuda") or job.accelerator == "cuda"
        count = len(job.assigned_devices or []) or job.devices or 1
        if on_gpu:
            gpu += hours * count
        else:
            cpu += hours
    return cpu, gpu


def report(spec: SweepSpec, *, jobs: list[Job], best: Job | None) -> dict[str, Any]:
    """The sweep's report: best trial, its test metrics, the control, the gain and its verdict, the cost."""
    metric, direction = spec.metric()
    trials = [job for job in jobs if job.sweep_role == "trial"]
    statuses = [trial_status(job) for job in trials]
    values = [value for value in (objective_value(job, metric) for job in trials) if value is not None]
    cpu, gpu = _hours(jobs)
    out: dict[str, Any] = {
        "objective": {"metric": metric, "direction": direction, "split": "eval"},
        "best_trial": None,
        "test": None,
        "control": None,
        "gain": None,
        "verdict": None,
        "spread": statistics.stdev(values) if len(values) >= 2 else None,
        "trials": {
            "total": len(trials),
            "completed": statuses.count(JobStatus.SUCCEEDED.value),
            "pruned": statuses.count(PRUNED),
            "failed": statuses.count(JobStatus.FAILED.value),
            "cancelled": statuses.count(JobStatus.CANCELLED.value),
        },
        "cpu_hours": cpu,
        "gpu_hours": gpu,
    }
    if best is None:
        return out
    out["best_trial"] = {
        "number": best.trial_number,
        "job_id": best.id,
        "value": objective_value(best, metric),
    }
    test_job = next((job for job in jobs if job.sweep_role == "test"), None)
    control_job = next((job for job in jobs if job.sweep_role == "control"), None)
    # Without a test file, the best trial's eval metrics stand in (and the control's, on the same split).
    measured, split = (test_job, "test") if test_job is not None else (best, "eval")
    if measured.status == JobStatus.SUCCEEDED:
        result = measured.result or {}
        out["test"] = {
            "job_id": measured.id,
            "split": split,
            "student": _metrics(result, "student", split),
            "teacher": _metrics(result, "teacher", split),
            "retention": result.get("retention"),
        }
    if control_job is not None:
        out["control"] = _control_summary(spec, control_job, split, best=best)
    if out["test"] and out["control"] and out["control"].get("test"):
        # The verdict is on the metric every job's verdict uses (accuracy, or a causal LM's perplexity).
        verdict_metric = PRIMARY_METRIC.get(spec.base.task, ("accuracy", True))[0]
        spread = out["spread"] if verdict_metric == metric else None
        out["gain"], out["verdict"] = _gain(
            out, verdict_metric, measured, control_job, split, spread=spread, best=best
        )
    return out


def _control_summary(spec: SweepSpec, control: Job, split: str, *, best: Job) -> dict[str, Any]:
    """The control job's outcome and its metrics on the split the best trial was measured on."""
    summary: dict[str, Any] = {
        "job_id": control.id,
        "status": control.status,
        "mode": spec.control,
        "measures": measures({**best.spec, "control": spec.control}),
    }
    if control.status == JobStatus.SUCCEEDED:
        summary["test"] = _metrics(control.result, "student", split)
        summary["split"] = split
    return summary


def _gain(
    out: dict[str, Any],
    metric: str,
    measured: Job,
    control: Job | None,
    split: str,
    *,
    spread: float | None,
    best: Job,
) -> tuple[dict[str, float], dict[str, Any] | None]:
    """Per metric, the best trial over its control (positive: the teacher helped); the verdict on `metric`."""
    student, baseline = out["test"]["student"], out["control"]["test"]
    gain = {
        name: baseline[name] - value if name in LOWER_IS_BETTER else value - baseline[name]
        for name, value in student.items()
        if name in baseline
    }
    if metric not in student or metric not in baseline or control is None:
        return gain, None
    student_stderr = _stderr(measured.result, "student", split, metric)
    control_stderr = _stderr(control.result, "student", split, metric)
    comparison = Comparison(
        metric=metric,
        higher_is_better=metric not in LOWER_IS_BETTER,
        student=student[metric],
        control=baseline[metric],
        # A teacher reading other tokens has a perplexity that does not compare.
        teacher=None
        if (best.spec.get("method") or {}).get("cross_tokenizer")
        else out["test"]["teacher"].get(metric),
        student_stderr=student_stderr,
        control_stderr=control_stderr,
        # The spread of recipes is no measure of noise when sampling errors are known; it stands in otherwise.
        spread=spread if student_stderr is None or control_stderr is None else None,
    )
    return gain, judge(comparison)
