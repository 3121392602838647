"""What the broker holds for the job queue, read straight from kombu's Redis keys or SQLAlchemy tables."""

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import or_

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldMessages:
    """Task ids of the queue's messages: waiting for a worker, or delivered to one recently."""

    waiting: frozenset[str]
    delivered: frozenset[str]


def held_messages(app: Celery, *, queue: str, delivered_within_seconds: float) -> HeldMessages | None:
    """The messages the broker holds for `queue`; None when its transport cannot be inspected.

    Only messages delivered within `delivered_within_seconds` count as delivered: a job whose message a
    worker took earlier and that is still queued was lost with that worker. (The SQLAlchemy transport
    also keeps every acked message, so a window is needed there anyway.)
    """
    with app.connection_for_read() as connection:
        driver = connection.transport.driver_type
        if driver == "redis":
            return _redis_messages(
                connection.default_channel, queue=queue, delivered_within_seconds=delivered_within_seconds
            )
        if driver == "sql":
            return _sqlalchemy_messages(
                connection.default_channel, queue=queue, delivered_within_seconds=delivered_within_seconds
            )
    return None


def _redis_messages(channel: Any, *, queue: str, delivered_within_seconds: float) -> HeldMessages:
    """The queue's lists (one per priority step) and kombu's unacked messages, read in one transaction."""
    # kombu names one list per priority step; _q_for_pri is how its own publish and consume find them.
    keys = list(dict.fromkeys(channel._q_for_pri(queue, step) for step in channel.priority_steps))
    with channel.conn_or_acquire() as client, client.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.lrange(key, 0, -1)
        # The index scores each unacked delivery tag with the time it was delivered.
        pipe.zrangebyscore(channel.unacked_index_key, time.time() - delivered_within_seconds, "+inf")
        pipe.hgetall(channel.unacked_key)
        *lists, recent_tags, unacked = pipe.execute()
    waiting = _task_ids(json.loads(raw) for items in lists for raw in items)
    # Each unacked entry is [message, exchange, routing_key]; the hash holds every queue's deliveries.
    delivered = _task_ids(json.loads(unacked[tag])[0] for tag in recent_tags if tag in unacked)
    return HeldMessages(waiting=waiting, delivered=delivered)


def _sqlalchemy_messages(channel: Any, *, queue: str, delivered_within_seconds: float) -> HeldMessages:
    """Kombu's message table: visible rows wait; invisible ones were delivered (its timestamp is local)."""
    message, queue_row = channel.message_cls, channel.queue_cls
    since = datetime.now() - timedelta(seconds=delivered_within_seconds)
    session = channel.session
    try:
        rows = (
            session.query(message.payload, message.visible)
            .join(queue_row, message.queue_id == queue_row.id)
            .filter(queue_row.name == queue)
            .filter(or_(message.visible != False, message.sent_at > since))  # noqa: E712
            .all()
        )
    finally:
        session.rollback()  # ends the read transaction, so SQLite's lock is not held between passes
    waiting = _task_ids(json.loads(payload) for payload, visible in rows if visible)
    delivered = _task_ids(json.loads(payload) for payload, visible in rows if not visible)
    return HeldMessages(waiting=waiting, delivered=delivered)


def _task_ids(messages: Iterable[dict[str, Any]]) -> frozenset[str]:
    """The Celery task ids of raw kombu messages (protocol 2 keeps it in the headers)."""
    ids = (_task_id(message) for message in messages)
    return frozenset(task_id for task_id in ids if task_id)


def _task_id(message: dict[str, Any]) -> str | None:
    headers = message.get("headers") or {}
    properties = message.get("properties") or {}
    task_id = headers.get("id") or properties.get("correlation_id")
    return str(task_id) if task_id else None
