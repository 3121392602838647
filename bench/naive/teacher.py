"""The teacher both sides of `bench.naive.distill_vs_naive` share: the base model fine-tuned by Distillery.

The base model is trained on the train split with method `supervised` (keeping its best epoch on the
eval split) and the result is cached under a directory named by a hash of everything that shapes it:
the recipe, the base model's files and the split files' contents. A later run with the same settings
reuses it instead of training again. Runs in a child process, so the benchmark's own process stays
small (a child's peak RSS starts from its parent's):

    python -m bench.naive.teacher REQUEST.json OUT.json
"""

import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.naive.job import TeacherRecipe
from bench.result_file import write_json
from distillery.jobspec import JobSpec
from engine.run import run_job

TEACHER_INFO = "teacher.json"


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_key(recipe: TeacherRecipe, base_dir: Path, files: dict[str, Path]) -> str:
    """A short hash of the recipe, the base model's config and weights, and the data files."""
    base = {
        name: file_digest(base_dir / name)
        for name in ("config.json", "model.safetensors")
        if (base_dir / name).is_file()
    }
    settings = {
        "recipe": asdict(recipe),
        "base": base,
        "files": {split: file_digest(path) for split, path in sorted(files.items())},
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def teacher_spec(recipe: TeacherRecipe) -> JobSpec:
    """Supervised fine-tuning of the base model on the train split, with eval and test splits."""
    return JobSpec.model_validate(
        {
            "task": "sequence_classification",
            "student": {"init": "pretrained", "model": {"path": "base"}},
            "data": {
                "train_file": "train",
                "eval_file": "eval",
                "test_file": "test",
                "text_column": "text",
                "label_column": "label",
                "max_length": recipe.max_length,
            },
            "method": {"type": "supervised"},
            "training": {
                "epochs": recipe.epochs,
                "batch_size": recipe.batch_size,
                "learning_rate": recipe.learning_rate,
                "warmup_ratio": recipe.warmup_ratio,
                "weight_decay": recipe.weight_decay,
                "seed": recipe.seed,
            },
        }
    )


def cached_teacher(
    *, base_dir: Path, files: dict[str, Path], recipe: TeacherRecipe, cache_root: Path, device: str
) -> tuple[Path, dict[str, Any]]:
    """The fine-tuned teacher's directory and what is known of it; trained only if not cached yet.

    `files` maps "train", "eval" and "test" to JSONL files of text and label.
    """
    key = cache_key(recipe, base_dir, files)
    target = cache_root / key
    if (target / TEACHER_INFO).is_file():
        return target, {**json.loads((target / TEACHER_INFO).read_text()), "cached": True}
    cache_root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="teacher-", dir=cache_root) as workdir:
        result = run_job(
            teacher_spec(recipe),
            workdir=Path(workdir) / "job",
            resolve_model=lambda ref: base_dir,
            resolve_file=files.__getitem__,
            device=device,
        )
        if result.status != "succeeded" or result.student_dir is None:
            raise RuntimeError(f"the teacher's fine-tuning ended {result.status}")
        report = result.report
        info = {
            "key": key,
            "recipe": asdict(recipe),
            "seconds": round(time.perf_counter() - started, 1),
            "precision": report["training"]["precision"],
            "device": report["training"]["device"],
            "eval_accuracy": report["student"]["eval"]["accuracy"],
            "test_accuracy": report["student"]["test"]["accuracy"],
        }
        write_json(result.student_dir / TEACHER_INFO, info)
        shutil.rmtree(target, ignore_errors=True)
        result.student_dir.rename(target)  # complete or absent: the info file is in it before the move
    return target, {**info, "cached": False}


def main() -> None:
    """Child entry point: REQUEST.json holds cached_teacher's arguments; OUT.json gets its answer."""
    request = json.loads(Path(sys.argv[1]).read_text())
    teacher_dir, info = cached_teacher(
        base_dir=Path(request["base_dir"]),
        files={split: Path(path) for split, path in request["files"].items()},
        recipe=TeacherRecipe(**request["recipe"]),
        cache_root=Path(request["cache_root"]),
        device=request["device"],
    )
    write_json(Path(sys.argv[2]), {"teacher_dir": str(teacher_dir), "info": info})


if __name__ == "__main__":
    main()
