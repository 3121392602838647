"""Timestamps on the wire: unix seconds, like the job APIs clients already know."""

from datetime import UTC, datetime


def unix_seconds(moment: datetime) -> int:
    """Whole seconds since the epoch; a naive value (SQLite returns those) is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def optional_unix_seconds(moment: datetime | None) -> int | None:
    """`unix_seconds`, passing None through."""
    return None if moment is None else unix_seconds(moment)
