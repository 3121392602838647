"""Devices at the claim: distinct indices for jobs sharing a worker, never more than it has, also when
claims race; jobs no live worker could serve wait for `resources`."""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from scheduling.arrange import WORKER, job_row, register_worker


def claim_for(settings: Any, node: str, holder: str, ticket: str) -> str | None:
    from app.jobs.lifecycle import claim_next

    return claim_next(node=node, holder=holder, ticket=ticket, settings=settings)


def test_two_jobs_of_two_gpus_share_a_four_gpu_worker_on_distinct_devices_and_a_third_waits(
    settings: Any, queue_job: Callable[..., str]
) -> None:
    from app.jobs.lifecycle import adopt

    register_worker(accelerator="cuda", devices=4, memory_gb=80.0)
    jobs = [queue_job("tenant-a", accelerator="cuda", devices=2) for _ in range(3)]
    holders = [f"{WORKER}:{index}" for index in range(3)]
    claimed = [claim_for(settings, WORKER, holder, jobs[0]) for holder in holders]
    assert claimed[:2] == jobs[:2] and claimed[2] is None
    first, second = (
        adopt(job_id=job, worker_id=f"process-{job}", holder=h)
        for job, h in zip(jobs[:2], holders, strict=False)
    )
    assert first is not None and second is not None
    assert len(first.devices) == len(second.devices) == 2
    assert set(first.devices).isdisjoint(second.devices)
    assert job_row(jobs[2]).status == "queued"


def test_a_cpu_worker_never_claims_a_cuda_job_which_waits_for_resources(
    settings: Any, queue_job: Callable[..., str]
) -> None:
    from app.jobs.lifecycle import adopt, record_waiting

    register_worker(accelerator="cpu", devices=2)
    cuda_job = queue_job("tenant-a", accelerator="cuda")
    too_big = queue_job("tenant-a", devices=3)
    too_hungry = queue_job("tenant-a", min_memory_gb=64.0)
    auto_job = queue_job("tenant-a")
    assert claim_for(settings, WORKER, "holder", cuda_job) == auto_job
    claimed = adopt(job_id=auto_job, worker_id="process", holder="holder")
    assert claimed is not None and claimed.devices == ()  # CPU slots are no accelerator indices
    assert record_waiting(settings=settings) == {
        cuda_job: "resources",
        too_big: "resources",
        too_hungry: "resources",
    }
    assert record_waiting(settings=settings) == {}  # recorded once


@pytest.mark.parametrize("database_kind", ["postgres"], indirect=True)
def test_racing_claims_never_share_a_job_nor_oversubscribe_a_worker(
    settings: Any, queue_job: Callable[..., str]
) -> None:
    nodes = [register_worker(f"worker-{n}@test", accelerator="cuda", devices=4) for n in range(2)]
    jobs = [
        queue_job(f"tenant-{index % 3}", accelerator="cuda", devices=1 + index % 2) for index in range(12)
    ]
    attempts = [(nodes[index % 2], f"holder-{index}", jobs[index]) for index in range(12)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda args: claim_for(settings, *args), attempts))
    claimed = [job for job in results if job is not None]
    assert len(claimed) == len(set(claimed)) >= 4
    for node in nodes:
        rows = [job_row(job) for job in claimed if job_row(job).worker_node == node]
        devices = [index for row in rows for index in row.assigned_devices]
        assert len(devices) == len(set(devices)) and set(devices) <= {0, 1, 2, 3}
