"""A teacher must carry a head for the job's task: a base model (a bare `BertModel`) has nothing to teach."""

import json
from pathlib import Path

from app.api.errors import InvalidField
from app.jobs.model_refs import MODEL_CONFIG
from distillery.jobspec.architectures import TASK_ARCHITECTURE_SUFFIXES, fits_task

TASK_NAMES = {"sequence_classification": "sequence-classification", "causal_lm": "language-model"}


def check_teacher_head(*, task: str, reference: str, teacher_dir: Path) -> None:
    """Refuse a teacher whose config names no architecture with a head for `task`, with the fix."""
    try:
        config = json.loads((teacher_dir / MODEL_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # the worker reads it again and names what is wrong
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(architectures, list) or fits_task([str(name) for name in architectures], task):
        return
    head = " or ".join(f"...{suffix}" for suffix in TASK_ARCHITECTURE_SUFFIXES[task])
    raise InvalidField(
        "teacher.path",
        f"model '{reference}' is a {', '.join(map(str, architectures))}, with no {TASK_NAMES[task]} head "
        f"({head}): a teacher must be trained for the task before it can teach. Fine-tune it first with "
        f"a job of method supervised (student: {{init: pretrained, model: {{path: {reference}}}}}), then "
        "name that job as the teacher (teacher: {job: job_...})",
        code="incompatible_model",
    )
