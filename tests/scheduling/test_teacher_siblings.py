"""Which unfinished jobs read the same teacher outputs as a starting job, on Postgres and on SQLite."""

from typing import Any

from distillery.jobspec import JobSpec

SPEC: dict[str, Any] = {
    "task": "causal_lm",
    "teacher": {"path": "gpt2-chat"},
    "data": {"train_file": "file-chats", "format": "chat"},
    "method": {"type": "gkd", "lmbda": 0.0},
    "training": {"epochs": 1},
}


def store(tenant: str, spec: dict[str, Any], status: str = "queued") -> str:
    from app.core.db import session_scope
    from app.jobs.models import Job

    with session_scope() as session:
        job = Job(tenant=tenant, spec=JobSpec.model_validate(spec).model_dump(mode="json"), status=status)
        session.add(job)
        session.flush()
        return str(job.id)


def test_only_the_tenants_unfinished_jobs_on_the_same_teacher_data_and_method_count(
    database_kind: str,
) -> None:
    from app.jobs.lifecycle import teacher_output_readers

    starting = store("tenant-a", SPEC, status="running")
    store("tenant-a", {**SPEC, "training": {"epochs": 1, "learning_rate": 1e-3}})  # same outputs
    store("tenant-a", {**SPEC, "method": {"type": "gkd", "lmbda": 0.0, "top_k": "exact"}})
    store("tenant-a", {**SPEC, "data": {**SPEC["data"], "max_length": 64}})
    store("tenant-a", SPEC, status="succeeded")
    store("tenant-b", SPEC)
    store("tenant-a", {**SPEC, "method": {"type": "supervised"}})

    readers = teacher_output_readers(job_id=starting, tenant="tenant-a", spec=JobSpec.model_validate(SPEC))

    assert readers == 1
