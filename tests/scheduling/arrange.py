"""Arranging the claim's world: registered workers, and reading a job back."""

from typing import Any

WORKER = "worker-1@test"


def register_worker(
    node: str = WORKER, *, accelerator: str = "cpu", devices: int = 1, memory_gb: float = 16.0
) -> str:
    """A live worker in the registry, as a started `distillery worker` registers itself."""
    from app.workers.records import WorkerCapacity
    from app.workers.registry import register

    capacity = WorkerCapacity(
        host="test-host",
        accelerator=accelerator,
        devices=devices,
        concurrency=devices,
        accelerator_model="Test GPU" if accelerator == "cuda" else None,
        device_memory_gb=memory_gb if accelerator == "cuda" else None,
        host_memory_gb=memory_gb,
        disk_free_gb=100.0,
        versions={"python": "3"},
    )
    register(node=node, capacity=capacity)
    return node


def job_row(job_id: str) -> Any:
    """The stored job."""
    from app.core.db import session_scope
    from app.jobs.models import Job

    with session_scope() as session:
        job = session.get_one(Job, job_id)
        session.expunge(job)
        return job
