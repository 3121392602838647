"""The verdict on a student against its control: help beyond noise, no help, or a teacher with nothing
to give."""

from app.jobs.verdict import Comparison, judge


def test_a_gain_beyond_twice_the_noise_helped() -> None:
    result = judge(
        Comparison(
            "accuracy",
            True,
            student=0.80,
            control=0.75,
            teacher=0.85,
            student_stderr=0.01,
            control_stderr=0.01,
        )
    )
    assert result["verdict"] == "helped" and abs(result["gain"] - 0.05) < 1e-12


def test_a_gain_within_the_noise_did_not_help() -> None:
    result = judge(
        Comparison(
            "accuracy",
            True,
            student=0.752,
            control=0.75,
            teacher=0.85,
            student_stderr=0.01,
            control_stderr=0.01,
        )
    )
    assert result["verdict"] == "did not help" and "within" in result["explanation"]


def test_a_teacher_no_better_than_the_control_is_named() -> None:
    result = judge(
        Comparison(
            "perplexity",
            False,
            student=250.0,
            control=241.0,
            teacher=240.0,
            student_stderr=3.0,
            control_stderr=3.0,
        )
    )
    assert result["verdict"] == "teacher no better than control" and result["gain"] == -9.0


def test_lower_is_better_metrics_gain_when_they_fall_and_spread_counts_as_noise() -> None:
    result = judge(Comparison("perplexity", False, student=214.0, control=241.0, teacher=194.0, spread=20.0))
    assert result["gain"] == 27.0 and result["noise"] == 20.0 and result["verdict"] == "did not help"
