"""The base model of a `control: base` job: the model its teacher was trained from."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.errors import InvalidField
from app.jobs.models import Job
from distillery.jobspec import JobSpec, ModelRef


def control_base(session: Session, *, tenant: str, spec: JobSpec) -> ModelRef | None:
    """`student.base`, or else the model a teacher given as a job started from; None unless control base.

    Raises InvalidField (naming `student.base`) when the teacher job's student started from no model of
    its own (such as one copied from its own teacher's layers), so nothing names the base.
    """
    if spec.control_mode != "base":
        return None
    if spec.student.base is not None:
        return spec.student.base
    assert spec.teacher is not None and spec.teacher.job is not None  # the spec refuses anything else
    teacher_spec = session.scalar(select(Job.spec).where(Job.id == spec.teacher.job, Job.tenant == tenant))
    start = (teacher_spec or {}).get("student", {}).get("model")
    if not start:
        raise InvalidField(
            "student.base",
            f"control 'base' starts from the model the teacher was trained from, but teacher job "
            f"'{spec.teacher.job}' names no starting model of its own (student.model): name it in "
            "student.base",
        )
    return ModelRef.model_validate(start)
