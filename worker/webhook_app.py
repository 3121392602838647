"""The webhook worker's Celery app: the service's configuration, its own queue, and the send task only.

`celery -A worker.webhook_app worker --pool threads -Q <webhook queue> --without-gossip --without-mingle`
(or `distillery webhook-worker`).
It never imports torch and runs apart from the job workers, which take one long job at a time: a
delivery never waits for a distillation to end.
"""

from kombu import Queue

from app.core.celery import SEND_WEBHOOK_TASK, make_celery
from app.core.config import get_settings

QUEUE = get_settings().webhook_queue_name

app = make_celery(include=["worker.webhook_tasks"])
app.conf.update(
    task_default_queue=QUEUE,
    task_queues=[Queue(QUEUE)],
    # Sending is I/O: a few threads wait on receivers at once.
    worker_concurrency=get_settings().webhook_senders,
)

__all__ = ["SEND_WEBHOOK_TASK", "app"]
