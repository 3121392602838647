"""A delivered message: count it, drop it when its job is not queued, else run the job in a fresh process.

The Celery pool process only touches the database here, so it never loads torch and is never recycled;
each real job gets a new interpreter, which frees every byte of accelerator memory the job held.
"""

import logging
import os
import subprocess
import sys

from app.core.config import get_settings
from app.jobs.lifecycle import JobStatus, record_delivery
from worker.transient import retry_database

logger = logging.getLogger(__name__)
JOB_STOP_SECONDS = 10.0


def handle_delivery(job_id: str) -> None:
    """Run a queued job in a fresh process; acknowledge any other delivery at once (a duplicate or stale)."""
    status = retry_database(
        lambda: record_delivery(job_id=job_id),
        budget_seconds=get_settings().database_retry_seconds,
        what=f"counting a delivery of job {job_id}",
    )
    if status != JobStatus.QUEUED:
        logger.info("dropping a delivery of job %s: it is %s", job_id, status or "gone")
        return
    run_in_fresh_process(job_id)


def run_in_fresh_process(job_id: str) -> None:
    """Run `worker.job_process` for the job and wait for it; it claims the job, so duplicates do nothing."""
    # `-m` puts the working directory, which it shares, first on its path: it finds the worker where this
    # process did, installed or in a checkout.
    process = subprocess.Popen([sys.executable, "-m", "worker.job_process", job_id, str(os.getpid())])
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
