"""The verdict in a job's `result.control`: helped beyond the noise, did not help, or a teacher no better
than its control; what the control measures; the log line; and `job.control_settled` for receivers."""

from types import SimpleNamespace
from typing import Any

import pytest

from api.test_job_controls import finish, result_of
from api.test_webhooks import deliveries, register
from app.jobs.control_report import MEASURES, control_summary
from app.jobs.models import JobStatus

S = JobStatus


def report(accuracy: float, stderr: float, *, teacher: float | None = None) -> dict[str, Any]:
    """A classification report with the accuracy's standard error on the test split."""
    side = {"test": {"accuracy": accuracy, "loss": 0.4}, "stderr": {"test": {"accuracy": stderr}}}
    result: dict[str, Any] = {"task": "sequence_classification", "student": side, "retention_split": "test"}
    if teacher is not None:
        result["teacher"] = {"test": {"accuracy": teacher, "loss": 0.3}}
    return result


@pytest.fixture
def pair(client: Any, job_spec: dict[str, Any]) -> tuple[str, str]:
    """A job with a same_init control from the teacher's layers (the default start): both ids."""
    parent = client.post("/v1/jobs", json={**job_spec, "control": "same_init"}).json()
    return parent["id"], parent["control_job_id"]


@pytest.mark.parametrize(
    ("student", "control", "teacher", "expected"),
    [
        (0.86, 0.80, 0.90, "helped"),
        (0.82, 0.80, 0.90, "did not help"),  # +0.02 against a threshold of 2 x 0.0141
        (0.80, 0.82, 0.81, "teacher no better than control"),
    ],
)
def test_the_verdict_weighs_the_gain_against_both_standard_errors(
    db_session: Any, pair: tuple[str, str], student: float, control: float, teacher: float, expected: str
) -> None:
    parent_id, control_id = pair
    finish(db_session, parent_id, S.SUCCEEDED, result=report(student, 0.01, teacher=teacher))
    finish(db_session, control_id, S.SUCCEEDED, result=report(control, 0.01))

    summary = result_of(db_session, parent_id)["control"]

    verdict = summary["verdict"]
    assert (verdict["verdict"], verdict["metric"]) == (expected, "accuracy")
    assert verdict["gain"] == pytest.approx(student - control)
    assert verdict["noise"] == pytest.approx(0.01 * 2**0.5)
    assert verdict["teacher_over_control"] == pytest.approx(teacher - control)
    assert (summary["mode"], summary["measures"]) == ("same_init", MEASURES["teacher_layers"])


def test_the_control_event_says_the_verdict_and_receivers_get_it_after_the_jobs_end(
    client: Any, db_session: Any, pair: tuple[str, str]
) -> None:
    webhook = register(client).json()
    parent_id, control_id = pair
    finish(db_session, parent_id, S.SUCCEEDED, result=report(0.86, 0.01, teacher=0.9))
    finish(db_session, control_id, S.SUCCEEDED, result=report(0.80, 0.01))

    events = client.get(f"/v1/jobs/{parent_id}/events").json()["data"]
    [line] = [event["message"] for event in events if event["type"] == "control"]
    assert "; verdict: helped (the student beats its control on accuracy by +0.06" in line
    sent = {(d["job_id"], d["event_type"]): d["payload"]["data"] for d in deliveries(client, webhook["id"])}
    assert sent[(parent_id, "job.succeeded")]["control"]["status"] == "pending"
    settled = sent[(parent_id, "job.control_settled")]
    assert (settled["status"], settled["control"]["status"], settled["control"]["mode"]) == (
        "succeeded",
        "succeeded",
        "same_init",
    )
    assert settled["control"]["verdict"]["verdict"] == "helped"


def test_a_receiver_that_asks_only_for_control_settlements_gets_only_them(
    client: Any, db_session: Any, pair: tuple[str, str]
) -> None:
    webhook = register(client, events=["job.control_settled"]).json()
    parent_id, control_id = pair
    finish(db_session, control_id, S.SUCCEEDED, result=report(0.80, 0.01))
    finish(db_session, parent_id, S.SUCCEEDED, result=report(0.80, 0.01, teacher=0.9))

    sent = deliveries(client, webhook["id"])

    assert [(d["job_id"], d["event_type"]) for d in sent] == [(parent_id, "job.control_settled")]
    assert sent[0]["payload"]["data"]["control"]["verdict"]["verdict"] == "did not help"


def test_a_language_models_verdict_is_on_perplexity_lower_being_better_and_a_base_control_says_so() -> None:
    def lm(perplexity: float, stderr: float) -> dict[str, Any]:
        side = {"test": {"perplexity": perplexity}, "stderr": {"test": {"perplexity": stderr}}}
        return {"task": "causal_lm", "student": side, "retention_split": "test"}

    parent = {**lm(214.0, 3.0), "teacher": {"test": {"perplexity": 194.0}}}
    control = SimpleNamespace(id="job_c", status="succeeded", result=lm(241.0, 4.0), error=None)

    summary = control_summary(parent, control, {"control": "base", "task": "causal_lm"})  # type: ignore[arg-type]

    verdict = summary["verdict"]
    assert (verdict["verdict"], verdict["metric"]) == ("helped", "perplexity")
    assert verdict["gain"] == pytest.approx(27.0) and verdict["noise"] == pytest.approx(5.0)
    assert verdict["teacher_over_control"] == pytest.approx(47.0)
    assert (summary["mode"], summary["measures"]) == ("base", MEASURES["base"])


def test_a_teacher_of_other_tokens_is_left_out_of_the_verdict() -> None:
    side = {"test": {"perplexity": 250.0}}
    parent = {
        "task": "causal_lm",
        "student": side,
        "teacher": {"test": {"perplexity": 20.0}},
        "retention_split": "test",
    }
    control = SimpleNamespace(
        id="job_c", status="succeeded", result={"student": {"test": {"perplexity": 240.0}}}
    )
    spec = {"control": True, "method": {"type": "response", "cross_tokenizer": "uld"}}

    verdict = control_summary(parent, control, spec)["verdict"]  # type: ignore[arg-type]

    assert verdict["teacher_over_control"] is None and verdict["noise"] is None
    assert verdict["verdict"] == "did not help"
