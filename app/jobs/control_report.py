"""What a job's `result.control` says: the control's outcome, the gain per metric, what the control
measures, and the verdict on the primary metric (helped, did not help, teacher no better than control)."""

from typing import Any

from sqlalchemy import Row

from app.jobs.models import TERMINAL_STATUSES, JobStatus
from app.jobs.verdict import Comparison, judge

# Metrics a smaller value of which is better: their gain is control minus student, so that a positive
# gain always means the teacher helped.
LOWER_IS_BETTER = frozenset({"loss", "perplexity"})
# The metric a verdict is given on, by task, and whether higher is better.
PRIMARY_METRIC = {"sequence_classification": ("accuracy", True), "causal_lm": ("perplexity", False)}
MEASURES = {
    "teacher_layers": "the control starts from the same teacher layers as the student, so the gain measures "
    "what the teacher's soft targets add in training alone, not what its weights bring",
    "same_init": "the control starts from the student's own starting weights, so the gain measures what "
    "the teacher's outputs add in training",
    "base": "the control starts from the base model the teacher was trained from, so the gain measures "
    "distillation and the teacher's initialisation together",
}


def control_mode(spec: dict[str, Any]) -> str:
    """The parent's control mode: `true` (and any older spec) is same_init."""
    return "base" if spec.get("control") == "base" else "same_init"


def measures(spec: dict[str, Any]) -> str:
    """One sentence on what the parent's control measures, for its mode and its student's start."""
    if control_mode(spec) == "base":
        return MEASURES["base"]
    student = spec.get("student") or {}
    from_teacher = student.get("init", "teacher_layers") == "teacher_layers" and not student.get("model")
    return MEASURES["teacher_layers" if from_teacher else "same_init"]


def control_summary(result: dict[str, Any], control: Row[Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The control's outcome and, once it succeeded, the gain of each metric on the parent's report split
    and the verdict on its primary metric. `spec` is the parent's."""
    status = control.status if control.status in TERMINAL_STATUSES else "pending"
    summary: dict[str, Any] = {
        "job_id": control.id,
        "status": status,
        "mode": control_mode(spec),
        "measures": measures(spec),
    }
    if status == JobStatus.FAILED and isinstance(control.error, dict):
        summary["error"] = {key: control.error.get(key) for key in ("code", "message", "type")}
    if status != JobStatus.SUCCEEDED or not isinstance(control.result, dict):
        return summary
    split = str(result.get("retention_split") or "eval")
    student, baseline = _metrics(result, split), _metrics(control.result, split)
    gain = {
        name: baseline[name] - value if name in LOWER_IS_BETTER else value - baseline[name]
        for name, value in student.items()
        if name in baseline
    }
    summary.update(split=split, student_metrics=student, control_metrics=baseline, gain=gain)
    summary["verdict"] = verdict(result, control.result, split=split, spec=spec)
    return summary


def verdict(
    result: dict[str, Any], control_result: dict[str, Any], *, split: str, spec: dict[str, Any]
) -> dict[str, Any] | None:
    """`judge`'s verdict on the primary metric of the split, with each side's standard error; None when
    either side lacks the metric. A teacher reading other tokens has a perplexity that does not compare."""
    metric, higher_is_better = PRIMARY_METRIC.get(
        str(result.get("task") or spec.get("task")), ("accuracy", True)
    )
    student, control = _metrics(result, split).get(metric), _metrics(control_result, split).get(metric)
    if student is None or control is None:
        return None
    other_tokens = bool((spec.get("method") or {}).get("cross_tokenizer"))
    teacher = None if other_tokens else _metrics(result, split, side="teacher").get(metric)
    comparison = Comparison(
        metric=metric,
        higher_is_better=higher_is_better,
        student=student,
        control=control,
        teacher=teacher,
        student_stderr=_stderr(result, split, metric),
        control_stderr=_stderr(control_result, split, metric),
    )
    return judge(comparison)


def _metrics(result: dict[str, Any], split: str, *, side: str = "student") -> dict[str, float]:
    """One model's numeric metrics on one split of a report."""
    metrics = (result.get(side) or {}).get(split) or {}
    return {name: float(value) for name, value in metrics.items() if _is_number(value)}


def _stderr(result: dict[str, Any], split: str, metric: str) -> float | None:
    """The student's standard error of a metric on a split, where the report gives one."""
    value = (((result.get("student") or {}).get("stderr") or {}).get(split) or {}).get(metric)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def describe(summary: dict[str, Any]) -> str:
    """One log line for the control's outcome, with the verdict once there is one."""
    if summary["status"] != JobStatus.SUCCEEDED:
        reason = f": {summary['error']['message']}" if "error" in summary else ""
        return f"control {summary['job_id']} {summary['status']}{reason}; no gain to report"
    gains = ", ".join(f"{name} {value:+.4f}" for name, value in sorted(summary["gain"].items()))
    line = f"gain over control {summary['job_id']} on {summary['split']}: {gains}"
    judged = summary.get("verdict")
    if judged:
        line += f"; verdict: {judged['verdict']} ({judged['explanation']})"
    return line
