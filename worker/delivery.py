"""A delivered message is a claim ticket: count it, drop it when its job is not queued, else let the
database pick the job this worker runs (`claim_next`) and run that one in a fresh process.

The Celery pool process only touches the database here, so it never loads torch and is never recycled;
each real job gets a new interpreter, which frees every byte of accelerator memory the job held. The
claim is made here rather than in the job's process: a ticket that finds nothing to run costs one
transaction, not an interpreter, and the job's process takes the claim over under its own id (`adopt`).
"""

import logging
import os
import subprocess
import sys

from app.core.config import get_settings
from app.jobs.lifecycle import JobStatus, claim_next, record_delivery
from worker.handover import HOLDER_VARIABLE
from worker.registration import current_node
from worker.transient import retry_database

logger = logging.getLogger(__name__)
JOB_STOP_SECONDS = 10.0


def handle_delivery(job_id: str) -> None:
    """Run the job the database picks for this worker; acknowledge a ticket of a job not queued at once."""
    settings = get_settings()
    status = retry_database(
        lambda: record_delivery(job_id=job_id),
        budget_seconds=settings.database_retry_seconds,
        what=f"counting a delivery of job {job_id}",
    )
    if status != JobStatus.QUEUED:
        logger.info("dropping a delivery of job %s: it is %s", job_id, status or "gone")
        return
    node = current_node()
    if node is None:  # not a registered job worker: the job's process claims the delivered job itself
        run_in_fresh_process(job_id)
        return
    holder = f"{node}:{os.getpid()}"
    claimed = retry_database(
        lambda: claim_next(node=node, holder=holder, ticket=job_id, settings=settings),
        budget_seconds=settings.database_retry_seconds,
        what=f"claiming a job for the ticket of {job_id}",
    )
    if claimed is None:
        logger.info("the ticket of job %s found nothing this worker can run now", job_id)
        return
    run_in_fresh_process(claimed, holder=holder)


def run_in_fresh_process(job_id: str, *, holder: str | None = None) -> None:
    """Run `worker.job_process` for the job and wait for it; it takes over the claim made for `holder`
    (or, without one, claims the job), so duplicates do nothing."""
    environment = {**os.environ, HOLDER_VARIABLE: holder} if holder else None
    # `-m` puts the working directory, which it shares, first on its path: it finds the worker where this
    # process did, installed or in a checkout.
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.job_process", job_id, str(os.getpid())], env=environment
    )
    try:
        code = process.wait()
    finally:
        # Reached with the job still running only when this process is being stopped: stop the job too.
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=JOB_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
    if code != 0:
        # Its lease runs out and the reconciler retries or fails it, as for any worker that died mid-job.
        logger.error("the process of job %s exited with code %s", job_id, code)
