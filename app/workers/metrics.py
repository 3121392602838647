"""Metrics of the workers registry, read at scrape time: live workers and their devices."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.metrics.database import DatabaseMetric, QueryMetric, Samples
from app.workers.models import Worker
from app.workers.service import lease_start


def worker_metrics(settings: Settings) -> Sequence[DatabaseMetric]:
    """Live workers and their devices, by accelerator."""

    def live(session: Session, now: datetime) -> list[tuple[str, int, int]]:
        rows = session.execute(
            select(Worker.accelerator, func.count(), func.sum(Worker.devices))
            .where(Worker.heartbeat_at >= lease_start(settings, now))
            .group_by(Worker.accelerator)
        )
        counts = {accelerator: (count, int(devices or 0)) for accelerator, count, devices in rows}
        return [(name, *counts.get(name, (0, 0))) for name in ("cpu", "cuda")]

    def workers(session: Session, now: datetime) -> Samples:
        return [((name,), count) for name, count, _devices in live(session, now)]

    def devices(session: Session, now: datetime) -> Samples:
        return [((name,), total) for name, _count, total in live(session, now)]

    return [
        QueryMetric(
            "distillery_workers_live",
            "Registered workers heartbeating within the lease.",
            ("accelerator",),
            workers,
        ),
        QueryMetric(
            "distillery_worker_devices",
            "Devices (GPUs, or CPU slots) of the live workers.",
            ("accelerator",),
            devices,
        ),
    ]
