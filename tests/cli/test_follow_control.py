"""`--follow` on a job with a control: it keeps following after the job succeeds while the control runs,
and ends with the verdict."""

from pathlib import Path
from typing import Any

import httpx
from cli_fake_api import FakeApi, make_job, page
from test_cli_commands import run

VERDICT = {
    "verdict": "helped",
    "metric": "accuracy",
    "gain": 0.06,
    "noise": 0.0141,
    "threshold": 0.0283,
    "teacher_over_control": 0.1,
    "explanation": "the student beats its control on accuracy by +0.06 (noise ±0.0141)",
}


def event(event_id: int, message: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "status",
        "level": "info",
        "message": message,
        "created_at": 1_700_000_000,
    }


def routes(api: FakeApi) -> None:
    """A job that has succeeded with its control pending; the control ends after one batch of events."""
    pending = {"job_id": "job_c", "status": "pending", "mode": "same_init"}
    settled = {
        **pending,
        "status": "succeeded",
        "split": "test",
        "gain": {"accuracy": 0.06},
        "verdict": VERDICT,
        "measures": "the control starts from the same teacher layers as the student",
    }
    control_events = [[event(1, "job queued as the control of job_p")], [event(2, "job succeeded")]]
    served = {"control": 0}

    def parent(_request: httpx.Request, _match: object) -> httpx.Response:
        control = settled if served["control"] == len(control_events) else pending
        job = make_job("job_p", "succeeded", control_job_id="job_c", result={"control": control})
        return httpx.Response(200, json=job)

    def control(_request: httpx.Request, _match: object) -> httpx.Response:
        status = "succeeded" if served["control"] == len(control_events) else "running"
        return httpx.Response(200, json=make_job("job_c", status, parent_id="job_p"))

    def events_of_control(_request: httpx.Request, _match: object) -> httpx.Response:
        if served["control"] == len(control_events):
            return httpx.Response(200, json=page([]))
        served["control"] += 1
        return httpx.Response(200, json=page(control_events[served["control"] - 1]))

    api.route("POST", "/v1/jobs", lambda _r, _m: httpx.Response(201, json=make_job("job_p")))
    api.route("GET", "/v1/jobs/job_p", parent)
    api.route("GET", "/v1/jobs/job_p/events", page([event(1, "job succeeded")]))
    api.route("GET", "/v1/jobs/job_c", control)
    api.route("GET", "/v1/jobs/job_c/events", events_of_control)


def test_follow_waits_for_a_pending_control_and_prints_the_verdict(api: FakeApi, tmp_path: Path) -> None:
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text("data: {train_file: file_1}\n")
    routes(api)

    code, out, _ = run(api, "submit", str(spec_path), "--follow", "--poll", "0")

    assert code == 0
    assert "following its control job_c" in out
    assert "job queued as the control of job_p" in out
    assert "Control job_c (same_init) on test: verdict helped: the student beats its control" in out
    assert "The control measures: the control starts from the same teacher layers" in out
    assert any(request.url.path == "/v1/jobs/job_c/events" for request in api.requests)
