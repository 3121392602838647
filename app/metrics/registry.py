"""The metrics of one API app: its own registry, so apps built side by side (tests) never share series."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.metrics.database import DatabaseCollector, DatabaseMetric


class PoolCollector:
    """Connections of the API's database pool: in use (held by a request or a stream) and idle."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        pool = self.engine.pool
        family = GaugeMetricFamily(
            "distillery_database_pool_connections",
            "Connections of this API process's database pool, by state.",
            labels=["state"],
        )
        for state, counter in (("in_use", "checkedout"), ("idle", "checkedin")):
            count = getattr(pool, counter, None)
            if count is not None:
                family.add_metric([state], float(count()))
        yield family


# A follower stays from a few seconds (a finished job's replay) to a long job's whole life.
STREAM_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 24 * 3600.0)


@dataclass
class ServiceMetrics:
    """The app's registry and the instruments its code updates."""

    registry: CollectorRegistry
    http_requests: Counter
    http_durations: Histogram
    stream_durations: Histogram
    open_streams: Gauge


def build_metrics(
    *, engine: Engine, sessions: sessionmaker[Session], database_metrics: Sequence[DatabaseMetric]
) -> ServiceMetrics:
    """A registry with the HTTP instruments, the pool's state and the domains' database metrics."""
    registry = CollectorRegistry()
    # The pool is read before the database metrics, whose own query would show as a connection in use.
    registry.register(PoolCollector(engine))
    registry.register(DatabaseCollector(sessions, database_metrics))
    return ServiceMetrics(
        registry=registry,
        http_requests=Counter(
            "distillery_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        ),
        http_durations=Histogram(
            "distillery_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its response; event streams excepted.",
            ["method", "route"],
            registry=registry,
        ),
        stream_durations=Histogram(
            "distillery_event_stream_duration_seconds",
            "Seconds an event stream was followed, from its request to its end.",
            ["method", "route"],
            buckets=STREAM_BUCKETS,
            registry=registry,
        ),
        open_streams=Gauge(
            "distillery_event_streams_open",
            "Event streams this API process is serving now.",
            registry=registry,
        ),
    )
