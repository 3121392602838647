"""Which jobs read the same stored teacher outputs: the parts of a spec the teacher cache's key follows."""

import hashlib
import json
from typing import Any

from distillery.jobspec.job import JobSpec
from distillery.jobspec.methods import TEACHER_METHODS


def teacher_outputs_signature(spec: JobSpec) -> str | None:
    """A digest equal for two specs whose teacher passes store the same entry; None without a teacher
    pass (no teacher, or an evaluation-only job).

    It covers what the entry's key hashes, as the spec states it: the teacher, the examples (the data
    and the tokenizer's model), the method and its options, and the precision. Jobs whose methods
    differ only in loss weights store the same entry yet get different digests: a missed match costs a
    pass run live, never a wrong entry.
    """
    if spec.method.type not in TEACHER_METHODS or spec.teacher is None or not spec.training.epochs:
        return None
    material: dict[str, Any] = {
        "task": spec.task,
        "teacher": spec.teacher.model_dump(mode="json"),
        "tokenizer": spec.student.model.model_dump(mode="json") if spec.student.model else None,
        "data": spec.data.model_dump(mode="json"),
        "method": spec.method.model_dump(mode="json"),
        "precision": spec.training.precision,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
