"""Worker logs in JSON mode: one object per line, each carrying the id of the job it is about."""

import io
import json
import logging
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

JOB_PROCESS_LOGS = """
import logging, threading
from app.core.config import Settings
from app.core.logs import configure_job_process_logging

configure_job_process_logging(Settings(log_format="json"), "job_abc")
logging.getLogger("engine.run").info("loading the teacher")
beat = threading.Thread(target=lambda: logging.getLogger("worker.reporter").warning("heartbeat late"))
beat.start()
beat.join()
"""


def test_every_line_of_a_job_process_carries_its_job_id_from_every_thread() -> None:
    result = subprocess.run(
        [sys.executable, "-c", JOB_PROCESS_LOGS],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["logger"], line["level"], line["message"], line["job_id"]) for line in lines] == [
        ("engine.run", "INFO", "loading the teacher", "job_abc"),
        ("worker.reporter", "WARNING", "heartbeat late", "job_abc"),
    ]


def test_celery_lines_logged_while_a_task_handles_a_job_carry_its_id(monkeypatch: Any) -> None:
    from app.core.config import get_settings
    from worker import signals
    from worker.tasks import run_job_task

    monkeypatch.setattr(get_settings(), "log_format", "json")
    stream = io.StringIO()
    logger = logging.getLogger("tests.celery_task")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(stream))
    signals._log_format(logger=logger)  # as Celery's after_setup_logger signal calls it

    signals._enter_job(sender=run_job_task, task_id="task-1", args=("job_xyz",))
    logger.warning("Task distillery.run_job[task-1] succeeded in 2.5s")
    signals._leave_job(task_id="task-1")
    signals._enter_job(sender=SimpleNamespace(name="another.task"), task_id="task-2", args=("whd_1",))
    logger.warning("another task's line")
    signals._leave_job(task_id="task-2")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["job_id"] == "job_xyz" and first["message"].startswith("Task distillery.run_job")
    assert "job_id" not in second
