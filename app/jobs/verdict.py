"""The plain verdict on a distilled student against its control: helped, did not help, or could not.

A gain counts as help only when it stands clear of the noise: the standard error of the difference
between the two measurements (each from its sampling error on the split, or from the spread of seeds
or trials where there are several), times NOISE_MULTIPLE. When the teacher itself measures no better
than the control, distillation had nothing to pass on, and the verdict says so instead of blaming the
method.
"""

import math
from dataclasses import dataclass
from typing import Any, Literal

Verdict = Literal["helped", "did not help", "teacher no better than control"]
HELPED: Verdict = "helped"
DID_NOT_HELP: Verdict = "did not help"
TEACHER_NO_BETTER: Verdict = "teacher no better than control"
# About a 95% one-sided bound for a normally distributed difference.
NOISE_MULTIPLE = 2.0


@dataclass(frozen=True)
class Comparison:
    """One metric of the student, its control and its teacher on one split, with their noise."""

    metric: str
    higher_is_better: bool
    student: float
    control: float
    teacher: float | None = None
    student_stderr: float | None = None
    control_stderr: float | None = None
    spread: float | None = None  # standard deviation of the gain over several seeds or trials

    def gain(self) -> float:
        """Student over control, signed so that a positive gain means the teacher helped."""
        return _better_by(self.student, self.control, self.higher_is_better)

    def noise(self) -> float | None:
        """The standard error of the gain: the larger of sampling error and spread; None if unknown."""
        sampling = None
        if self.student_stderr is not None and self.control_stderr is not None:
            sampling = math.hypot(self.student_stderr, self.control_stderr)
        known = [value for value in (sampling, self.spread) if value is not None]
        return max(known) if known else None


def judge(comparison: Comparison) -> dict[str, Any]:
    """The verdict, the numbers behind it and one sentence that explains it."""
    gain, noise = comparison.gain(), comparison.noise()
    threshold = NOISE_MULTIPLE * noise if noise is not None else 0.0
    teacher_edge = (
        _better_by(comparison.teacher, comparison.control, comparison.higher_is_better)
        if comparison.teacher is not None
        else None
    )
    verdict: Verdict
    if gain > threshold:
        verdict = HELPED
    elif teacher_edge is not None and teacher_edge <= threshold:
        verdict = TEACHER_NO_BETTER
    else:
        verdict = DID_NOT_HELP
    return {
        "verdict": verdict,
        "metric": comparison.metric,
        "gain": gain,
        "noise": noise,
        "threshold": threshold,
        "teacher_over_control": teacher_edge,
        "explanation": _explain(comparison.metric, verdict, gain, noise, teacher_edge),
    }


def _better_by(value: float, baseline: float, higher_is_better: bool) -> float:
    """How much better `value` is than `baseline` (negative when worse)."""
    return value - baseline if higher_is_better else baseline - value


def _explain(metric: str, verdict: Verdict, gain: float, noise: float | None, edge: float | None) -> str:
    """One sentence for a report or a log line."""
    noise_text = f"noise ±{noise:.4g}" if noise is not None else "noise unknown"
    if verdict == HELPED:
        return f"the student beats its control on {metric} by {gain:+.4g} ({noise_text})"
    if verdict == TEACHER_NO_BETTER:
        return (
            f"the teacher measures no better than the control on {metric} ({edge:+.4g}, {noise_text}): "
            "it has nothing to pass on; train it longer or start the student elsewhere"
        )
    return f"the student's gain over its control on {metric} is {gain:+.4g}, within the {noise_text}"
