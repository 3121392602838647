"""Reading jobs: cursor pagination, the status filter, events, checkpoints, artifacts and downloads."""

from typing import Any

from api.arrange import stored_artifact
from app.core.base import utcnow
from app.jobs.events import append_event
from app.jobs.models import Artifact, Checkpoint, Job, JobStatus


def test_jobs_page_newest_first_with_a_cursor(client: Any, create_job: Any) -> None:
    created = [create_job(name=f"job {index}")["id"] for index in range(5)]
    newest_first = created[::-1]

    first = client.get("/v1/jobs", params={"limit": 2}).json()
    assert [job["id"] for job in first["data"]] == newest_first[:2]
    assert (first["object"], first["has_more"], first["first_id"], first["last_id"]) == (
        "list",
        True,
        newest_first[0],
        newest_first[1],
    )
    second = client.get("/v1/jobs", params={"limit": 2, "after": first["last_id"]}).json()
    assert [job["id"] for job in second["data"]] == newest_first[2:4] and second["has_more"]
    third = client.get("/v1/jobs", params={"limit": 2, "after": second["last_id"]}).json()
    assert [job["id"] for job in third["data"]] == newest_first[4:] and not third["has_more"]
    assert [job["id"] for job in client.get("/v1/jobs").json()["data"]] == newest_first


def test_jobs_created_in_the_same_instant_keep_a_stable_order(
    client: Any, create_job: Any, db_session: Any
) -> None:
    ids = [create_job()["id"] for _ in range(3)]
    same_moment = utcnow()
    for job_id in ids:
        db_session.get(Job, job_id).created_at = same_moment
    db_session.commit()
    seen = []
    after = None
    while True:
        page = client.get("/v1/jobs", params={"limit": 1, **({"after": after} if after else {})}).json()
        seen += [job["id"] for job in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == sorted(ids, reverse=True)


def test_an_unknown_cursor_is_422_on_after(client: Any) -> None:
    response = client.get("/v1/jobs", params={"after": "job_unknown"})
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "after"


def test_a_limit_out_of_range_is_422_on_limit(client: Any) -> None:
    for limit in (0, 101):
        response = client.get("/v1/jobs", params={"limit": limit})
        assert (response.status_code, response.json()["error"]["param"]) == (422, "limit")


def test_the_status_filter_keeps_only_that_status(client: Any, create_job: Any) -> None:
    kept, cancelled = create_job(), create_job()
    client.post(f"/v1/jobs/{cancelled['id']}/cancel")
    queued = client.get("/v1/jobs", params={"status": "queued"}).json()["data"]
    assert [job["id"] for job in queued] == [kept["id"]]
    done = client.get("/v1/jobs", params={"status": "cancelled"}).json()["data"]
    assert [job["id"] for job in done] == [cancelled["id"]]


def test_an_unknown_status_filter_is_422_on_status(client: Any) -> None:
    response = client.get("/v1/jobs", params={"status": "sleeping"})
    assert (response.status_code, response.json()["error"]["param"]) == (422, "status")


def test_events_come_in_order_and_page_after_a_sequence_number(
    client: Any, create_job: Any, db_session: Any
) -> None:
    job = create_job()
    for step in (1, 2, 3):
        append_event(
            db_session, job_id=job["id"], type="metrics", message=f"step {step}", data={"step": step}
        )
    db_session.commit()
    url = f"/v1/jobs/{job['id']}/events"
    everything = client.get(url).json()
    assert [event["id"] for event in everything["data"]] == [1, 2, 3, 4]
    assert everything["data"][1]["object"] == "job.event" and everything["data"][1]["data"] == {"step": 1}
    page = client.get(url, params={"after": 1, "limit": 2}).json()
    assert [event["message"] for event in page["data"]] == ["step 1", "step 2"]
    assert (page["has_more"], page["first_id"], page["last_id"]) == (True, 2, 3)
    assert client.get(url, params={"after": 4}).json()["data"] == []


def test_checkpoints_and_artifacts_are_listed_and_artifacts_stream(
    client: Any, create_job: Any, db_session: Any, settings: Any
) -> None:
    job_id = create_job()["id"]
    db_session.add(
        Checkpoint(job_id=job_id, step=20, epoch=1.0, location=f"jobs/{job_id}/checkpoints/step-20")
    )
    db_session.add(
        Checkpoint(job_id=job_id, step=10, epoch=0.5, location=f"jobs/{job_id}/checkpoints/step-10")
    )
    content = bytes(range(256)) * 4096
    stored_artifact(settings, db_session, job_id, "student.tar.gz", content)
    db_session.commit()

    checkpoints = client.get(f"/v1/jobs/{job_id}/checkpoints").json()
    assert [checkpoint["step"] for checkpoint in checkpoints["data"]] == [10, 20]
    artifacts = client.get(f"/v1/jobs/{job_id}/artifacts").json()["data"]
    assert [(a["name"], a["bytes"], a["url"]) for a in artifacts] == [
        ("student.tar.gz", len(content), f"/v1/jobs/{job_id}/artifacts/student.tar.gz")
    ]
    download = client.get(artifacts[0]["url"])
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-length"] == str(len(content))
    assert download.headers["content-type"] == "application/gzip"
    assert 'filename="student.tar.gz"' in download.headers["content-disposition"]


def test_an_unknown_artifact_is_404(client: Any, create_job: Any) -> None:
    job_id = create_job()["id"]
    response = client.get(f"/v1/jobs/{job_id}/artifacts/nothing.bin")
    assert response.status_code == 404


def test_only_a_finished_job_can_be_deleted_and_its_folder_goes_with_it(
    client: Any, create_job: Any, db_session: Any, settings: Any
) -> None:
    job_id = create_job()["id"]
    stored_artifact(settings, db_session, job_id, "report.json", b"{}")
    db_session.commit()
    refused = client.delete(f"/v1/jobs/{job_id}")
    assert refused.status_code == 409 and "queued" in refused.json()["error"]["message"]

    client.post(f"/v1/jobs/{job_id}/cancel")
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json() == {"id": job_id, "object": "job", "deleted": True}
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert not (settings.artifacts / "jobs" / job_id).exists()
    assert db_session.query(Artifact).count() == 0
    assert db_session.get(Job, job_id) is None


def test_a_job_whose_student_a_queued_job_reads_cannot_be_deleted(
    client: Any, create_job: Any, job_spec: dict[str, Any], db_session: Any, settings: Any
) -> None:
    teacher_job = create_job()["id"]
    db_session.get(Job, teacher_job).status = JobStatus.SUCCEEDED
    db_session.commit()
    student = settings.artifacts / "jobs" / teacher_job / "student"
    student.mkdir(parents=True)
    (student / "config.json").write_text("{}")
    assert client.post("/v1/jobs", json={**job_spec, "teacher": {"job": teacher_job}}).status_code == 201
    response = client.delete(f"/v1/jobs/{teacher_job}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_in_use"


def test_the_method_filter_keeps_only_that_method(client: Any, create_job: Any, job_spec: Any) -> None:
    response_kd = create_job(name="kd")
    student = {"model": {"path": job_spec["teacher"]["path"]}}
    supervised = create_job(name="plain", method={"type": "supervised"}, teacher=None, student=student)
    supervised_only = client.get("/v1/jobs", params={"method": "supervised"}).json()["data"]
    assert [job["id"] for job in supervised_only] == [supervised["id"]]
    kd_only = client.get("/v1/jobs", params={"method": "response", "status": "queued"}).json()["data"]
    assert [job["id"] for job in kd_only] == [response_kd["id"]]


def test_an_unknown_method_filter_is_422_on_method_naming_the_methods(client: Any) -> None:
    response = client.get("/v1/jobs", params={"method": "alchemy"})
    assert (response.status_code, response.json()["error"]["param"]) == (422, "method")
    assert "response" in response.json()["error"]["message"]


def test_the_name_filter_matches_part_of_the_name_ignoring_case_and_wildcards(
    client: Any, create_job: Any
) -> None:
    sentiment = [create_job(name=name)["id"] for name in ("Sentiment-small", "tiny sentiment")]
    create_job(name="summaries")
    literal = create_job(name="100%_done")["id"]
    found = client.get("/v1/jobs", params={"name": "SENTIMENT"}).json()["data"]
    assert [job["id"] for job in found] == sentiment[::-1]
    assert [job["id"] for job in client.get("/v1/jobs", params={"name": "%_"}).json()["data"]] == [literal]
    assert client.get("/v1/jobs", params={"name": "ment", "limit": 1}).json()["has_more"] is True


def test_filters_page_with_the_cursor(client: Any, create_job: Any) -> None:
    ids = [create_job(name=f"run {index}")["id"] for index in range(3)]
    create_job(name="other")
    first = client.get("/v1/jobs", params={"name": "run", "limit": 2}).json()
    second = client.get("/v1/jobs", params={"name": "run", "limit": 2, "after": first["last_id"]}).json()
    assert [job["id"] for job in first["data"] + second["data"]] == ids[::-1]
    assert first["has_more"] and not second["has_more"]
