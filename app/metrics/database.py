"""Metrics read from the database at scrape time, with cheap aggregate queries.

The database is the one place that knows every job, whichever API replica or worker changed it, so
these numbers are the same from every replica (aggregate them with `max`, not `sum`). A domain adds its
own metrics as `QueryMetric`s or `QueryHistogram`s, e.g. webhook deliveries by outcome:

    QueryMetric(
        "distillery_webhook_deliveries_total", "Webhook delivery attempts, by outcome.", ("outcome",),
        lambda session, _now: session.execute(
            select(Delivery.outcome, func.count()).group_by(Delivery.outcome)
        ),
        kind="counter",
    )
"""

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import ColumnElement, Float, SQLColumnExpression, case, cast, func
from sqlalchemy.orm import Session, sessionmaker

from app.core.base import utcnow
from app.core.db import is_database_unreachable
from app.core.outage import OutageLog

logger = logging.getLogger(__name__)

Samples = Iterable[tuple[Sequence[str], float]]


@dataclass(frozen=True)
class QueryMetric:
    """A gauge or a counter: one sample per (label values, value) row that `query` returns."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    query: Callable[[Session, datetime], Samples]
    kind: Literal["gauge", "counter"] = "gauge"

    def family(self, session: Session, now: datetime) -> Metric:
        """The metric with its samples as of now."""
        if self.kind == "counter":
            family: Metric = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        else:
            family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for label_values, value in self.query(session, now):
            family.add_metric([str(label) for label in label_values], float(value))  # type: ignore[attr-defined]
        return family


@dataclass(frozen=True)
class HistogramCounts:
    """Observations at or under each bound (in the order of the bounds), their number and their sum."""

    at_or_under: Sequence[int]
    count: int
    total: float


@dataclass(frozen=True)
class QueryHistogram:
    """A histogram whose bucket counts one aggregate query computes (see `bucket_counts`)."""

    name: str
    documentation: str
    bounds: tuple[float, ...]
    query: Callable[[Session, datetime, tuple[float, ...]], HistogramCounts]

    def family(self, session: Session, now: datetime) -> Metric:
        """The histogram as of now."""
        counts = self.query(session, now, self.bounds)
        buckets = [(f"{bound:g}", float(n)) for bound, n in zip(self.bounds, counts.at_or_under, strict=True)]
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], [*buckets, ("+Inf", float(counts.count))], sum_value=counts.total)
        return family


DatabaseMetric = QueryMetric | QueryHistogram


def seconds_between(
    session: Session, start: SQLColumnExpression[Any], end: SQLColumnExpression[Any]
) -> ColumnElement[float]:
    """`end - start` in seconds, in the SQL of the session's database."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def bucket_columns(value: ColumnElement[float], bounds: Sequence[float]) -> list[ColumnElement[int]]:
    """Aggregates counting the rows whose `value` is at most each bound, then all of them, then their sum."""
    at_or_under = [func.sum(case((value <= bound, 1), else_=0)) for bound in bounds]
    return [*at_or_under, func.count(value), func.coalesce(func.sum(value), 0.0)]


def histogram_counts(row: Sequence[float | int | None], bounds: Sequence[float]) -> HistogramCounts:
    """The result row of `bucket_columns` as histogram counts."""
    values = [value or 0 for value in row]
    return HistogramCounts(
        at_or_under=[int(n) for n in values[: len(bounds)]],
        count=int(values[len(bounds)]),
        total=float(values[len(bounds) + 1]),
    )


class DatabaseCollector:
    """Runs every database metric's query in one short read-only session per scrape.

    When the database cannot be read, the scrape still answers: `distillery_metrics_database_up` is 0
    and the database's metrics are left out, so the HTTP metrics and an alert on the outage still work.
    """

    def __init__(self, sessions: sessionmaker[Session], metrics: Sequence[DatabaseMetric]) -> None:
        self.sessions, self.metrics = sessions, list(metrics)
        self.outage = OutageLog(logger, what="the database (metrics)")

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "distillery_metrics_database_up", "1 when this scrape could read the database, 0 when not."
        )
        try:
            with self.sessions() as session:
                now = utcnow()
                families = [metric.family(session, now) for metric in self.metrics]
        except Exception as error:
            if not is_database_unreachable(error):
                raise
            self.outage.failed(error)
            up.add_metric([], 0.0)
            yield up
            return
        self.outage.answered()
        up.add_metric([], 1.0)
        yield up
        yield from families
