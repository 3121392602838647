"""`python -m worker.job_process JOB_ID PARENT_PID`: runs one job in its own interpreter, then exits."""

import logging
import os
import socket
import sys

from celery.platforms import set_pdeathsig

from app.core.config import get_settings
from app.core.logs import configure_job_process_logging
from worker.execution import execute_job

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    """Claim and run the job; ends with its parent, as pool processes end with their worker."""
    job_id, parent_pid = argv[0], int(argv[1])
    set_pdeathsig("SIGKILL")
    if os.getppid() != parent_pid:
        return 1  # the parent died before the death signal was armed
    configure_job_process_logging(get_settings(), job_id)
    execute_job(job_id, worker_id=f"{socket.gethostname()}:{os.getpid()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
