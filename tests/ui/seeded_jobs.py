"""Jobs stored as a worker leaves them, for the dashboard's tests: rows, metrics events and artifacts."""

import secrets
from datetime import timedelta
from typing import Any

from app.core.base import utcnow
from app.core.db import get_sessionmaker
from app.jobs.events import append_event
from app.jobs.models import Artifact, Job

SPEC = {
    "task": "sequence_classification",
    "teacher": {"path": "teachers/sentiment"},
    "student": {"init": "teacher_layers", "layers": [0, 2]},
    "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
    "training": {"epochs": 3, "batch_size": 16, "learning_rate": 5e-05},
}


def new_tenant() -> tuple[str, str]:
    """A fresh tenant and a key of it: (tenant, key)."""
    from app.auth.service import create_key

    tenant = f"ui-{secrets.token_hex(4)}"
    with get_sessionmaker()() as session:
        key = create_key(session=session, tenant=tenant, name="dashboard tests")
        session.commit()
    return tenant, key


def seed_job(tenant: str, *, age_s: float = 0, ran_s: float | None = None, **fields: Any) -> str:
    """A job row of the tenant, created `age_s` ago; with `ran_s`, started 5 s later and run that long."""
    created = utcnow() - timedelta(seconds=age_s)
    times: dict[str, Any] = {"created_at": created}
    if ran_s is not None:
        times |= {"started_at": created + timedelta(seconds=5)}
        times |= {"finished_at": created + timedelta(seconds=5 + ran_s)}
    with get_sessionmaker()() as session:
        job = Job(tenant=tenant, **({"spec": SPEC, "status": "succeeded"} | times | fields))
        session.add(job)
        session.commit()
        return job.id


def seed_curves(job_id: str, *, steps: int, train_loss: float, eval_accuracy: float) -> None:
    """Train loss every step and eval loss and accuracy every other, as the engine reports them, logged
    evenly over the job's run."""
    with get_sessionmaker()() as session:
        job = session.get_one(Job, job_id)
        start = job.started_at or job.created_at
        step_time = ((job.finished_at or start) - start) / steps
        for step in range(1, steps + 1):
            train = {"split": "train", "step": step, "metrics": {"loss": train_loss / step}}
            logged = [append_event(session, job_id=job_id, type="metrics", message="train loss", data=train)]
            if step % 2 == 0:
                metrics = {"loss": 0.9 / step, "accuracy": eval_accuracy * step / steps}
                data = {"split": "eval", "step": step, "metrics": metrics}
                logged.append(append_event(session, job_id=job_id, type="metrics", message="eval", data=data))
            for event in logged:
                event.created_at = start + step * step_time
        session.commit()


def seed_artifact(job_id: str, name: str, size: int) -> None:
    """An artifact's row of `size` bytes (its file is not needed to list it)."""
    with get_sessionmaker()() as session:
        session.add(
            Artifact(job_id=job_id, name=name, bytes=size, sha256="0" * 64, location=f"jobs/{job_id}/{name}")
        )
        session.commit()


def report(accuracy: float, *, teacher: float = 0.9, size: int = 48_000_000) -> dict[str, Any]:
    """A succeeded job's result on the test split."""
    return {
        "retention_split": "test",
        "teacher": {
            "parameters": {"total": 4_400_000},
            "size_on_disk_bytes": 180_000_000,
            "test": {"accuracy": teacher},
        },
        "student": {
            "parameters": {"total": 1_100_000},
            "size_on_disk_bytes": size,
            "test": {"accuracy": accuracy},
        },
        "retention": {"accuracy": accuracy / teacher},
        "latency": {"teacher_ms": 12.0, "student_ms": 4.0, "speedup": 3.0},
    }
