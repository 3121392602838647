"""`python -m worker.rank JOB_ID`, started by torchrun: one rank of a job's process group.

Rank 0 runs the job as a lone job process would: it reports to the database with the worker id the job
was claimed with, stores the student and records the job's end. The other ranks run the engine with
plain callbacks and never touch the database. Every rank dies with the torchrun agent that started it.
"""

import logging
import os
import sys
import time
from pathlib import Path

from celery.platforms import set_pdeathsig

from app.core.config import get_settings
from app.core.logs import configure_job_process_logging
from engine.callbacks import Callbacks
from worker.execution import run_claimed, run_engine
from worker.group_dir import GROUP_DIR_ENV, JOB_PROCESS_ENV, GroupDir, Handoff

logger = logging.getLogger(__name__)
# A rank that fails waits this long before exiting, so that rank 0, which meets an error of the spec or the
# data at the same point, records it as the job's end before torchrun stops the group.
FAILED_RANK_LINGER_SECONDS = 10.0


def main(argv: list[str]) -> int:
    """Run this process's rank of the job; exits 0 once its part is done."""
    set_pdeathsig("SIGKILL")
    if parent_of(os.getppid()) != int(os.environ[JOB_PROCESS_ENV]):
        return 1  # the agent died before the death signal was armed
    rank = int(os.environ["RANK"])
    group = GroupDir(Path(os.environ[GROUP_DIR_ENV]))
    group.write_pid(rank)
    handoff = group.read_handoff()
    settings = get_settings()
    configure_job_process_logging(settings, handoff.job.id)
    if rank == 0:
        return lead(handoff, group)
    return follow(rank, handoff, group)


def lead(handoff: Handoff, group: GroupDir) -> int:
    """Run the job as rank 0, recording its end; an unexpected error is left for the job process."""
    try:
        run_claimed(handoff.job, worker_id=handoff.worker_id, settings=get_settings(), inputs=handoff.inputs)
    except Exception as error:
        logger.exception("rank 0 of job %s failed", handoff.job.id)
        group.write_error(0, f"{type(error).__name__}: {error}")
        return 1
    group.mark_leader_done()
    return 0


def follow(rank: int, handoff: Handoff, group: GroupDir) -> int:
    """Train as one of the ranks that report nothing; a failure is left in the group's folder."""
    try:
        run_engine(handoff.job, settings=get_settings(), callbacks=Callbacks(), inputs=handoff.inputs)
    except Exception as error:
        logger.exception("rank %d of job %s failed", rank, handoff.job.id)
        group.write_error(rank, f"{type(error).__name__}: {error}")
        time.sleep(FAILED_RANK_LINGER_SECONDS)
        return 1
    return 0


def parent_of(pid: int) -> int:
    """The parent of process `pid` (0 for init or a process that is gone), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
