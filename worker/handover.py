"""The job's process takes over the claim its pool process made (`worker/delivery.py`)."""

import os

from app.jobs.lifecycle import ClaimedJob, adopt, claim

# Set by the pool process for the job's process: the id the claim was made under.
HOLDER_VARIABLE = "DISTILLERY_CLAIM_HOLDER"


def take_over(*, job_id: str, worker_id: str) -> ClaimedJob | None:
    """The claimed job, now leased to `worker_id`; without a pool's claim, claim the job directly."""
    holder = os.environ.get(HOLDER_VARIABLE)
    if holder is None:
        return claim(job_id=job_id, worker_id=worker_id)
    return adopt(job_id=job_id, worker_id=worker_id, holder=holder)
