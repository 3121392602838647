"""A job worker's entry in the registry: registered before it consumes, refreshed, removed at shutdown.

The node name is kept here for the pool processes, which are forked after `worker_init` and inherit it.
"""

import logging
from dataclasses import replace
from typing import Any

from celery.signals import celeryd_after_setup, worker_init, worker_shutdown

from app.core.celery import RUN_JOB_TASK, job_queue
from app.core.config import get_settings
from app.workers.records import WorkerCapacity
from app.workers.registry import refresh, register, unregister
from worker.capacity import Gpu, list_gpus, probe
from worker.periodic import PeriodicThread, run_while_worker_runs

logger = logging.getLogger(__name__)
_state: dict[str, Any] = {"node": None, "gpus": [], "concurrency": None}


def current_node() -> str | None:
    """This worker's Celery node name; None outside a job worker."""
    node: str | None = _state["node"]
    return node


def capacity_now() -> WorkerCapacity:
    """The capacity to report: GPUs as probed at start, disk and the rest as of now."""
    gpus: list[Gpu] = _state["gpus"]
    capacity = probe(get_settings(), gpus=gpus)
    concurrency = _state["concurrency"]
    return capacity if concurrency is None else replace(capacity, concurrency=concurrency)


@celeryd_after_setup.connect
def _consume_own_queue(sender: str, instance: Any, **_: Any) -> None:
    """A job worker also takes the jobs of its accelerator, however it was started (`--queues` or not)."""
    if not _is_job_worker(instance):
        return
    settings = get_settings()
    accelerator = probe(settings, gpus=list_gpus()).accelerator
    instance.app.amqp.queues.select_add(job_queue(settings.queue_name, accelerator))


@worker_init.connect
def _register(sender: Any, **_: Any) -> None:
    """Register before the worker consumes, so that its first claim finds its row."""
    if not _is_job_worker(sender):
        return
    _state.update(node=sender.hostname, gpus=list_gpus(), concurrency=sender.concurrency)
    try:
        register(node=sender.hostname, capacity=capacity_now())
    except Exception as error:  # the heartbeat registers it once the database answers
        logger.warning("could not register worker %s yet: %s", sender.hostname, type(error).__name__)


def _is_job_worker(sender: Any) -> bool:
    return RUN_JOB_TASK in getattr(getattr(sender, "app", None), "tasks", {})


def _heartbeat() -> None:
    node = current_node()
    if node is not None:
        refresh(node=node, capacity=capacity_now())


run_while_worker_runs(lambda: PeriodicThread("registry", get_settings().heartbeat_seconds, _heartbeat))


@worker_shutdown.connect
def _unregister(**_: Any) -> None:
    node = current_node()
    if node is None:
        return
    try:
        unregister(node=node)
    except Exception as error:  # it ages out after the lease
        logger.warning("could not remove worker %s from the registry: %s", node, type(error).__name__)
