"""The job state machine: compare-and-set transitions, and cancellation through the API."""

from typing import Any

import pytest

from app.core.base import utcnow
from app.jobs.models import Job, JobStatus
from app.jobs.transitions import ALLOWED, IllegalTransition, transition

S = JobStatus
LEGAL = [(source, target) for source, targets in ALLOWED.items() for target in targets]
ILLEGAL = [(source, target) for source in S for target in S if target not in ALLOWED[source]]


def job_in(db_session: Any, status: JobStatus, **values: Any) -> str:
    """A job row in a given state, committed."""
    job = Job(tenant="default", spec={}, status=status, **values)
    db_session.add(job)
    db_session.commit()
    return job.id


def test_every_legal_transition_happens(db_session: Any) -> None:
    for source, target in LEGAL:
        job_id = job_in(db_session, source)
        transition(db_session, job_id=job_id, target=target)
        db_session.commit()
        assert db_session.get(Job, job_id, populate_existing=True).status == target, (source, target)


def test_every_illegal_transition_is_refused_and_changes_nothing(db_session: Any) -> None:
    for source, target in ILLEGAL:
        job_id = job_in(db_session, source)
        with pytest.raises(IllegalTransition) as refused:
            transition(db_session, job_id=job_id, target=target)
        assert refused.value.current == source, (source, target)
        db_session.rollback()
        assert db_session.get(Job, job_id, populate_existing=True).status == source


def test_a_transition_owned_by_another_worker_is_refused(db_session: Any) -> None:
    job_id = job_in(db_session, S.RUNNING, worker_id="worker-a")
    with pytest.raises(IllegalTransition):
        transition(db_session, job_id=job_id, target=S.SUCCEEDED, worker_id="worker-b")
    transition(db_session, job_id=job_id, target=S.SUCCEEDED, worker_id="worker-a")


def test_only_one_of_two_racing_claims_wins(db_session: Any) -> None:
    from app.core.db import get_sessionmaker

    job_id = job_in(db_session, S.QUEUED)
    first, second = get_sessionmaker()(), get_sessionmaker()()
    try:
        transition(first, job_id=job_id, target=S.RUNNING, sources=[S.QUEUED], values={"worker_id": "a"})
        first.commit()
        with pytest.raises(IllegalTransition):
            transition(second, job_id=job_id, target=S.RUNNING, sources=[S.QUEUED], values={"worker_id": "b"})
    finally:
        first.close()
        second.close()
    assert db_session.get(Job, job_id, populate_existing=True).worker_id == "a"


def test_cancelling_a_queued_job_cancels_it_at_once(client: Any, create_job: Any) -> None:
    job = create_job()
    response = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 200
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["finished_at"] is not None and cancelled["cancel_requested_at"] is not None
    messages = [event["message"] for event in client.get(f"/v1/jobs/{job['id']}/events").json()["data"]]
    assert messages == ["job queued", "job cancelled"]


def test_cancelling_a_running_job_asks_it_to_stop(client: Any, create_job: Any, db_session: Any) -> None:
    job_id = create_job()["id"]
    transition(
        db_session,
        job_id=job_id,
        target=S.RUNNING,
        sources=[S.QUEUED],
        values={"worker_id": "w1", "started_at": utcnow(), "heartbeat_at": utcnow()},
    )
    db_session.commit()

    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelling"
    row = db_session.get(Job, job_id, populate_existing=True)
    assert row.status == S.CANCELLING and row.cancel_requested_at is not None and row.finished_at is None

    again = client.post(f"/v1/jobs/{job_id}/cancel")
    assert again.status_code == 200 and again.json() == response.json()

    transition(
        db_session, job_id=job_id, target=S.CANCELLED, worker_id="w1", values={"finished_at": utcnow()}
    )
    db_session.commit()
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED, S.CANCELLED])
def test_cancelling_a_finished_job_is_409_naming_its_status(
    client: Any, create_job: Any, db_session: Any, status: JobStatus
) -> None:
    job_id = create_job()["id"]
    db_session.get(Job, job_id).status = status
    db_session.commit()
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert str(status) in response.json()["error"]["message"]
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == status


def test_a_worker_error_is_shown_in_the_public_shape(client: Any, create_job: Any, db_session: Any) -> None:
    job_id = create_job()["id"]
    error = {
        "code": "vocab_mismatch",
        "message": "vocabularies differ",
        "param": "student.model",
        "type": "user",
    }
    transition(db_session, job_id=job_id, target=S.RUNNING, values={"worker_id": "w"})
    transition(db_session, job_id=job_id, target=S.FAILED, values={"error": error, "finished_at": utcnow()})
    db_session.commit()
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["error"]) == ("failed", {**error, "retryable": False})
