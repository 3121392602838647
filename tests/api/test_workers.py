"""GET /v1/workers: the live workers and what each has, paginated, without host names."""

from datetime import timedelta
from typing import Any

import pytest

from app.core.base import utcnow
from app.workers.models import Worker

pytestmark = pytest.mark.usefixtures("no_workers")


def add_worker(db_session: Any, node: str, *, heartbeat_age: float = 0.0, **capacity: Any) -> None:
    now = utcnow()
    db_session.add(
        Worker(
            id=node,
            host="gpu-box-7.internal",
            accelerator=capacity.get("accelerator", "cuda"),
            accelerator_model="NVIDIA H100 80GB HBM3",
            devices=capacity.get("devices", 8),
            device_memory_gb=79.6,
            host_memory_gb=1007.0,
            disk_free_gb=512.0,
            versions={"python": "3.12.3", "torch": "2.5.1", "distillery": "0.1.0"},
            concurrency=8,
            started_at=now - timedelta(hours=1),
            heartbeat_at=now - timedelta(seconds=heartbeat_age),
        )
    )
    db_session.commit()


def test_a_tenant_sees_live_workers_capacity_but_no_host(client: Any, db_session: Any, settings: Any) -> None:
    add_worker(db_session, "celery@gpu-box-7.internal")
    add_worker(db_session, "celery@gone-box", heartbeat_age=settings.lease_seconds + 5)

    body = client.get("/v1/workers").json()

    [worker] = body["data"]
    assert worker["object"] == "worker" and worker["id"].startswith("wkr_")
    assert (worker["accelerator"], worker["devices"], worker["device_memory_gb"]) == ("cuda", 8, 79.6)
    assert worker["versions"]["torch"] == "2.5.1"
    assert "gpu-box" not in str(body)


def test_workers_are_listed_in_pages(client: Any, db_session: Any) -> None:
    for index in range(3):
        add_worker(db_session, f"celery@box-{index}", accelerator="cpu", devices=2)

    first = client.get("/v1/workers", params={"limit": 2}).json()
    rest = client.get("/v1/workers", params={"limit": 2, "after": first["last_id"]}).json()

    assert first["has_more"] and not rest["has_more"]
    ids = [worker["id"] for worker in first["data"] + rest["data"]]
    assert len(set(ids)) == 3
    assert client.get("/v1/workers", params={"after": "wkr_unknown"}).status_code == 422


def test_listing_workers_needs_a_key(anonymous_client: Any) -> None:
    assert anonymous_client.get("/v1/workers").status_code == 401
