"""Waiting on the API: poll a job or a sweep until a condition holds, failing with what it still was."""

import time
from collections.abc import Callable
from typing import Any

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
Resource = dict[str, Any]


def poll(
    read: Callable[[], Resource],
    until: Callable[[Resource], bool],
    *,
    timeout: float,
    interval: float,
    failure: Callable[[Resource], str],
) -> Resource:
    """`read()` until `until` holds of what it returns; AssertionError with `failure(last)` past `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        resource = read()
        if until(resource):
            return resource
        if time.monotonic() > deadline:
            raise AssertionError(failure(resource))
        time.sleep(interval)


def ended(resource: Resource) -> bool:
    """Whether a job or a sweep has reached a terminal status."""
    return resource["status"] in TERMINAL


def wait_for_job(
    client: Any,
    job_id: str,
    until: Callable[[Resource], bool] | None = None,
    timeout: float = 120,
    interval: float = 0.3,
) -> Resource:
    """Poll a job until `until(job)` holds (default: a terminal status); returns the job."""
    return poll(
        lambda: client.get(f"/v1/jobs/{job_id}").json(),
        until or ended,
        timeout=timeout,
        interval=interval,
        failure=lambda job: f"job {job_id} still {job['status']} after {timeout}s",
    )


def wait_for_sweep(
    client: Any, sweep_id: str, until: Callable[[Resource], bool] | None = None, timeout: float = 600
) -> Resource:
    """Poll a sweep until `until(sweep)` holds (default: finished); returns the sweep."""
    return poll(
        lambda: client.get(f"/v1/sweeps/{sweep_id}").json(),
        until or ended,
        timeout=timeout,
        interval=0.5,
        failure=lambda sweep: f"sweep {sweep_id} still {sweep['status']}/{sweep['stage']}: {sweep}",
    )
