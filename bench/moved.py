"""The flat `python -m bench.<name>` commands of the previous release, kept working for one more release."""

import importlib.util
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

# Old module name under `bench` -> where the benchmark lives now (docs/benchmarks.md lists them).
MOVED = {
    "lm_demo": "bench.lm.demo",
    "lm_loss_memory": "bench.lm.loss_memory",
    "lm_cross_tokenizer": "bench.lm.cross_tokenizer",
    "queue_hygiene": "bench.service.queue_hygiene",
    "api_load": "bench.service.api_load",
    "distill_vs_naive": "bench.naive.distill_vs_naive",
    "teacher_cache_steps": "bench.speed.teacher_cache_steps",
    "teacher_cache": "bench.speed.teacher_cache",
    "mfu": "bench.speed.mfu",
    "ddp_scaling": "bench.speed.ddp_scaling",
}


class MovedBenchmarks(MetaPathFinder):
    """Finds `bench.<old name>` at the moved benchmark's file, so `python -m bench.<old name>` runs it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != "bench" or name not in MOVED:
            return None
        moved = importlib.util.find_spec(MOVED[name])
        if moved is None or moved.origin is None:
            return None
        return importlib.util.spec_from_file_location(fullname, moved.origin)


def install() -> None:
    """Let the old names be found after every real module (idempotent)."""
    if not any(isinstance(finder, MovedBenchmarks) for finder in sys.meta_path):
        sys.meta_path.append(MovedBenchmarks())
