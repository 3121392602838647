"""One Ray Train worker of a job: rank 0 runs it as a lone job process would, the other ranks follow.

Ray Train has started the torch.distributed group and set torchrun's variables (RANK, WORLD_SIZE,
LOCAL_RANK), which the engine reads. As in a torchrun group (`worker/rank.py`), rank 0 reports with the
worker id the job was claimed with and records the job's end, and leaves an unexpected error (a peer's
death fails its collectives) and a cancel (`stop_job`) to the job process; the other ranks never touch
the database.
"""

import logging
import time
from dataclasses import replace
from typing import Any

import ray.train
import torch.distributed

from app.core.config import Settings, get_settings
from app.core.logs import configure_job_process_logging
from distillery.jobspec import JobSpec
from engine.callbacks import Callbacks
from worker.execution import run_claimed, run_engine
from worker.group_dir import Handoff, handoff_from_json
from worker.job_folder import JobFolder
from worker.job_inputs import DatabaseInputs, ResolvedInputs
from worker.rank import FAILED_RANK_LINGER_SECONDS

logger = logging.getLogger(__name__)


def run_rank(config: dict[str, Any]) -> None:
    """Run this worker's rank of the job; raises when it failed, which fails the Ray job."""
    handoff = handoff_from_json(config["handoff"])
    settings = get_settings()
    configure_job_process_logging(settings, handoff.job.id)
    context = ray.train.get_context()
    rank = context.get_world_rank()
    if settings.has_remote_store:
        handoff = replace(handoff, inputs=node_inputs(handoff, settings, local_rank=context.get_local_rank()))
    try:
        run_this_rank(handoff, rank=rank)
    finally:
        if settings.has_remote_store and context.get_local_rank() == 0:
            JobFolder.of(handoff.job.id, settings).remove_local()


def node_inputs(handoff: Handoff, settings: Settings, *, local_rank: int) -> ResolvedInputs:
    """The job's inputs and stored checkpoints, copied from the object store to this node.

    The job process resolved them on its own machine; a node shares no disk with it, so the node's
    first rank copies them into the node's scratch while the others wait, then each rank finds the copies.
    """
    spec = JobSpec.model_validate(handoff.job.spec)
    reads = DatabaseInputs(spec=spec, tenant=handoff.job.tenant, settings=settings)
    if local_rank == 0:
        reads.resolve_all()
        JobFolder.of(handoff.job.id, settings).fetch_checkpoints()
    torch.distributed.barrier()
    return reads.resolve_all()  # the copies are there now: nothing more is downloaded


def run_this_rank(handoff: Handoff, *, rank: int) -> None:
    """Rank 0 reports and records the job; the others train and follow."""
    settings = get_settings()
    if rank == 0:
        run_claimed(
            handoff.job,
            worker_id=handoff.worker_id,
            settings=settings,
            inputs=handoff.inputs,
            stops_on_cancel=False,  # the job process maps a cancel to stop_job
        )
        return
    try:
        run_engine(handoff.job, settings=settings, callbacks=Callbacks(), inputs=handoff.inputs)
    except Exception:
        logger.exception("rank %d of job %s failed", rank, handoff.job.id)
        # Rank 0 meets an error of the spec or the data at the same point: let it record it first.
        time.sleep(FAILED_RANK_LINGER_SECONDS)
        raise
