"""Which queued job a free worker claims, on Postgres and on SQLite: fair turns between tenants,
priorities, ageing, quotas; tickets sent again, left empty, and woken by a job's end."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from scheduling.arrange import WORKER, job_row, register_worker

HOLDER = f"{WORKER}:1"


def claim(settings: Any, ticket: str, **overrides: Any) -> str | None:
    from app.jobs.lifecycle import claim_next

    return claim_next(
        node=WORKER, holder=HOLDER, ticket=ticket, settings=settings.model_copy(update=overrides)
    )


def finish(job_id: str) -> None:
    from app.jobs.lifecycle import JobStatus, finish

    assert finish(job_id=job_id, worker_id=HOLDER, status=JobStatus.SUCCEEDED, result={})


def test_a_tenant_with_one_job_goes_before_the_second_of_a_tenant_with_fifty(
    settings: Any, queue_job: Callable[..., str]
) -> None:
    register_worker(devices=1)
    a_jobs = [queue_job("tenant-a") for _ in range(50)]
    b_job = queue_job("tenant-b")
    assert claim(settings, a_jobs[0]) == a_jobs[0]
    assert claim(settings, a_jobs[1]) is None  # the one slot is taken
    finish(a_jobs[0])
    ticket_before = job_row(a_jobs[1]).publish_id
    assert claim(settings, a_jobs[1]) == b_job  # B never started a job: its turn before A's second
    assert job_row(a_jobs[1]).publish_id not in (None, ticket_before)  # its ticket was sent again
    finish(b_job)
    assert claim(settings, a_jobs[2]) == a_jobs[1]


def test_a_high_priority_job_overtakes_normal_ones_queued_before_it(
    settings: Any, queue_job: Callable[..., str]
) -> None:
    register_worker(devices=1)
    normal = [queue_job("tenant-a") for _ in range(3)]
    high = queue_job("tenant-a", priority="high")
    assert claim(settings, normal[0]) == high
    assert job_row(high).worker_node == WORKER


def test_a_starved_low_job_ages_past_normal_ones(settings: Any, queue_job: Callable[..., str]) -> None:
    from app.core.base import utcnow

    register_worker(devices=1)
    low = queue_job("tenant-a", priority="low", queued_at=utcnow() - timedelta(seconds=25))
    normal = queue_job("tenant-b", queued_at=utcnow())
    # Without ageing (a day per level) the normal job runs first ...
    assert claim(settings, normal, scheduler_ageing_seconds=86400.0) == normal
    finish(normal)
    queue_job("tenant-b", queued_at=utcnow())
    # ... with a level per 10 s, 25 s of waiting make the low job count as high.
    assert claim(settings, normal, scheduler_ageing_seconds=10.0) == low


def test_a_tenant_at_its_limit_waits_for_quota_and_others_run(
    settings: Any, queue_job: Callable[..., str]
) -> None:
    from app.jobs.lifecycle import record_waiting

    register_worker(devices=4)
    limited = settings.model_copy(update={"tenant_max_running_jobs": 1})
    first, second = queue_job("tenant-a"), queue_job("tenant-a")
    other = queue_job("tenant-b")
    assert claim(limited, first) == first
    assert claim(limited, second) == other
    assert claim(limited, second) is None  # free devices, but tenant A is at its limit
    assert job_row(second).waiting_for == "quota"
    assert job_row(second).publish_id is None  # a ticket that found nothing: woken by a job's end
    finish(first)
    assert job_row(second).publish_id is not None  # the end woke it with a new ticket
    assert record_waiting(settings=limited) == {second: None}
    assert claim(limited, second) == second


def test_a_key_limits_its_tenants_devices(settings: Any, queue_job: Callable[..., str]) -> None:
    from app.auth.models import ApiKey
    from app.core.db import session_scope
    from app.jobs.lifecycle import record_waiting

    register_worker(devices=4)
    with session_scope() as session:
        session.add(ApiKey(tenant="tenant-a", key_hash="0" * 64, prefix="dk-test", max_running_devices=3))
    big, small = queue_job("tenant-a", devices=2), queue_job("tenant-a", devices=2)
    assert claim(settings, big) == big
    assert claim(settings, small) is None
    assert record_waiting(settings=settings) == {}  # the ticket's own pass recorded it already
    assert job_row(small).waiting_for == "quota"
