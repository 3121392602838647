"""Control runs: `control: true` queues a linked job without the teacher; the pair is cancelled, listed
and deleted together, and the parent's result gets its gain over the control whichever ends last."""

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

from api.test_job_create import queued_job_ids
from app.core.db import get_sessionmaker
from app.jobs.models import Job, JobStatus
from app.jobs.transitions import transition

S = JobStatus


def report(accuracy: float, loss: float, *, split: str = "test") -> dict[str, Any]:
    """The part of a report the gain is taken from."""
    metrics = {"accuracy": accuracy, "macro_f1": accuracy - 0.01, "loss": loss}
    return {"student": {"eval": metrics, split: metrics}, "retention_split": split}


@pytest.fixture
def pair(client: Any, job_spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job posted with `control: true`, and its control; both queued."""
    response = client.post(
        "/v1/jobs", json={**job_spec, "name": "kd", "metadata": {"run": "7"}, "control": True}
    )
    assert response.status_code == 201, response.text
    parent = response.json()
    control = client.get(f"/v1/jobs/{parent['control_job_id']}").json()
    return parent, control


@pytest.mark.parametrize("method", [{"type": "supervised"}, {"type": "self"}, {"type": "mutual"}])
def test_control_on_a_method_without_a_teacher_is_a_422_naming_the_field(
    client: Any, job_spec: dict[str, Any], method: dict[str, Any]
) -> None:
    response = client.post("/v1/jobs", json={**job_spec, "method": method, "control": True})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "control" and method["type"] in error["message"]
    assert client.get("/v1/jobs").json()["data"] == []


def test_control_must_be_a_boolean(client: Any, job_spec: dict[str, Any]) -> None:
    response = client.post("/v1/jobs", json={**job_spec, "control": "sometimes"})
    assert (response.status_code, response.json()["error"]["param"]) == (422, "control")


def test_a_job_with_control_queues_its_twin_without_the_teacher_for_the_same_tenant(
    client: Any,
    other_tenant_client: Any,
    pair: tuple[dict[str, Any], dict[str, Any]],
    redis_client: Any,
    settings: Any,
) -> None:
    parent, control = pair

    assert (parent["parent_id"], control["parent_id"]) == (None, parent["id"])
    assert (control["control_job_id"], control["status"]) == (None, "queued")
    assert (control["name"], control["metadata"]) == ("kd (control)", {"run": "7"})
    assert control["spec"]["method"] == {"type": "supervised"} and control["spec"]["control"] is False
    for part in ("teacher", "student", "data", "training", "task"):
        assert control["spec"][part] == parent["spec"][part], part
    assert queued_job_ids(redis_client, settings.queue_name) == [parent["id"], control["id"]]
    listed = client.get("/v1/jobs").json()["data"]
    assert {job["id"] for job in listed} == {parent["id"], control["id"]}
    assert [
        job["id"] for job in client.get("/v1/jobs", params={"parent_id": parent["id"]}).json()["data"]
    ] == [control["id"]]
    assert other_tenant_client.get(f"/v1/jobs/{control['id']}").status_code == 404


def test_a_retried_post_with_control_queues_no_second_control(client: Any, job_spec: dict[str, Any]) -> None:
    headers = {"Idempotency-Key": "with-control"}
    first = client.post("/v1/jobs", json={**job_spec, "control": True}, headers=headers).json()
    again = client.post("/v1/jobs", json={**job_spec, "control": True}, headers=headers).json()

    assert again["control_job_id"] == first["control_job_id"] is not None
    assert len(client.get("/v1/jobs").json()["data"]) == 2


def test_cancelling_a_queued_job_cancels_its_control_and_not_the_other_way_round(
    client: Any, pair: tuple[dict[str, Any], dict[str, Any]], create_job: Callable[..., dict[str, Any]]
) -> None:
    parent, control = pair
    assert client.post(f"/v1/jobs/{parent['id']}/cancel").json()["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{control['id']}").json()["status"] == "cancelled"

    other = create_job(control=True)
    assert client.post(f"/v1/jobs/{other['control_job_id']}/cancel").json()["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{other['id']}").json()["status"] == "queued"


def test_cancelling_a_running_job_asks_its_running_control_to_stop(
    client: Any, db_session: Any, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    parent, control = pair
    for job_id in (parent["id"], control["id"]):
        transition(db_session, job_id=job_id, target=S.RUNNING, values={"worker_id": "w"})
    db_session.commit()

    assert client.post(f"/v1/jobs/{parent['id']}/cancel").json()["status"] == "cancelling"

    stopped = client.get(f"/v1/jobs/{control['id']}").json()
    assert stopped["status"] == "cancelling" and stopped["cancel_requested_at"] is not None


def test_deleting_a_job_deletes_its_control_which_cannot_be_deleted_alone(
    client: Any, db_session: Any, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    parent, control = pair
    transition(db_session, job_id=parent["id"], target=S.CANCELLED)
    db_session.commit()
    # Cancelled with its parent, the control has finished too.
    assert client.get(f"/v1/jobs/{control['id']}").json()["status"] == "cancelled"

    refused = client.delete(f"/v1/jobs/{control['id']}")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "job_is_control")
    assert client.delete(f"/v1/jobs/{parent['id']}").status_code == 200
    assert client.get(f"/v1/jobs/{control['id']}").status_code == 404
    assert client.get("/v1/jobs").json()["data"] == []


def test_a_finished_job_whose_control_still_runs_cannot_be_deleted(
    client: Any, db_session: Any, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    parent, control = pair
    finish(db_session, parent["id"], S.SUCCEEDED, result=report(0.9, 0.3))
    start(db_session, control["id"])

    refused = client.delete(f"/v1/jobs/{parent['id']}")

    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "job_not_finished")
    assert control["id"] in refused.json()["error"]["message"]


def start(session: Any, job_id: str) -> None:
    transition(session, job_id=job_id, target=S.RUNNING, values={"worker_id": "w"})
    session.commit()


def finish(session: Any, job_id: str, target: JobStatus, **values: Any) -> None:
    """Run a queued job and end it as a worker does."""
    start(session, job_id)
    transition(session, job_id=job_id, target=target, worker_id="w", values=values)
    session.commit()


def result_of(session: Any, job_id: str) -> Any:
    return session.get(Job, job_id, populate_existing=True).result


@pytest.mark.parametrize("parent_last", [False, True], ids=["control-last", "parent-last"])
def test_whichever_ends_last_writes_the_gain_on_the_test_split(
    client: Any, db_session: Any, pair: tuple[dict[str, Any], dict[str, Any]], parent_last: bool
) -> None:
    parent, control = pair
    ends = [(control["id"], report(0.80, 0.50)), (parent["id"], report(0.86, 0.42))]
    for job_id, result in ends if parent_last else ends[::-1]:
        finish(db_session, job_id, S.SUCCEEDED, result=result)

    summary = client.get(f"/v1/jobs/{parent['id']}").json()["result"]["control"]

    assert (summary["job_id"], summary["status"], summary["split"]) == (control["id"], "succeeded", "test")
    assert summary["gain"] == pytest.approx({"accuracy": 0.06, "macro_f1": 0.06, "loss": 0.08})
    assert summary["control_metrics"]["accuracy"] == 0.80 and summary["student_metrics"]["accuracy"] == 0.86
    events = client.get(f"/v1/jobs/{parent['id']}/events").json()["data"]
    [message] = [event["message"] for event in events if event["type"] == "control"]
    assert message.startswith(
        f"gain over control {control['id']} on test: accuracy +0.0600, loss +0.0800, macro_f1 +0.0600; "
        "verdict: helped ("
    )


def test_a_job_ended_before_its_control_says_the_control_is_pending_and_the_eval_split_serves_alone(
    db_session: Any, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    parent, control = pair
    finish(db_session, parent["id"], S.SUCCEEDED, result=report(0.7, 0.6, split="eval"))
    pending = result_of(db_session, parent["id"])["control"]
    assert (pending["job_id"], pending["status"], pending["mode"]) == (control["id"], "pending", "same_init")
    assert "gain" not in pending and "verdict" not in pending

    finish(db_session, control["id"], S.SUCCEEDED, result=report(0.75, 0.5, split="eval"))

    summary = result_of(db_session, parent["id"])["control"]
    assert summary["split"] == "eval" and summary["gain"]["accuracy"] == pytest.approx(-0.05)


def test_a_failed_control_leaves_its_parent_succeeded_saying_so(
    client: Any, db_session: Any, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    parent, control = pair
    finish(db_session, parent["id"], S.SUCCEEDED, result=report(0.9, 0.3))
    error = {"code": "internal_error", "message": "RuntimeError: boom", "type": "system", "param": None}
    finish(db_session, control["id"], S.FAILED, error=error)

    done = client.get(f"/v1/jobs/{parent['id']}").json()

    assert done["status"] == "succeeded" and done["result"]["student"]["test"]["accuracy"] == 0.9
    summary = done["result"]["control"]
    assert (summary["job_id"], summary["status"]) == (control["id"], "failed")
    assert summary["error"] == {"code": "internal_error", "message": "RuntimeError: boom", "type": "system"}
    assert "gain" not in summary and "verdict" not in summary


def test_a_failed_job_stops_its_control(db_session: Any, pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    parent, control = pair
    finish(db_session, parent["id"], S.FAILED, error={"code": "bad", "message": "bad", "type": "user"})

    stopped = db_session.get(Job, control["id"], populate_existing=True)
    assert stopped.status == S.CANCELLED and result_of(db_session, parent["id"]) is None


def test_the_two_ends_racing_still_write_the_gain(
    db_session: Any, pair: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    parent, control = pair
    start(db_session, parent["id"])
    start(db_session, control["id"])
    # Each side ends its job, waits (up to a second) for the other to have done the same, then commits:
    # without the parent's row lock both would read the other as running and neither write the gain.
    meet = threading.Barrier(2, timeout=1)
    errors: list[BaseException] = []

    def end(job_id: str, result: dict[str, Any]) -> None:
        session = get_sessionmaker()()
        try:
            transition(session, job_id=job_id, target=S.SUCCEEDED, worker_id="w", values={"result": result})
            with contextlib.suppress(threading.BrokenBarrierError):  # the other waits for this one's lock
                meet.wait()
            session.commit()
        except BaseException as error:
            errors.append(error)
        finally:
            session.close()

    threads = [
        threading.Thread(target=end, args=(parent["id"], report(0.9, 0.3))),
        threading.Thread(target=end, args=(control["id"], report(0.8, 0.4))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert result_of(db_session, parent["id"])["control"]["gain"]["accuracy"] == pytest.approx(0.1)
