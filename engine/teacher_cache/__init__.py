"""The teacher cache: a method's teacher outputs computed once, stored on disk and shared across jobs."""

from engine.teacher_cache.outputs import (
    CacheOutcome,
    StoredOutputs,
    TeacherCacheConfig,
    TeacherPass,
    prepare_teacher_outputs,
)
from engine.teacher_cache.shared import SharedEntries

__all__ = [
    "CacheOutcome",
    "SharedEntries",
    "StoredOutputs",
    "TeacherCacheConfig",
    "TeacherPass",
    "prepare_teacher_outputs",
]
