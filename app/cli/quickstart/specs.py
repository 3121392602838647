"""The quickstart's sizes, the names it leaves in the model root, and its two job specs."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What the quickstart leaves under the model root; the classification examples name them.
BASE_MODEL = "base/minilm-l6"
TEACHER_MODEL = "teachers/minilm-sentiment"
# The split files it writes under `<data dir>/quickstart/`, which the examples read.
SPLITS = ("train", "eval", "test")
# Every other layer of MiniLM-L6's six, as DistilBERT takes every other layer of BERT-base.
STUDENT_LAYERS = [0, 2, 4]


@dataclass(frozen=True)
class Sizes:
    """How many tweets each split holds, and how long the jobs train."""

    train_rows: int = 1000
    eval_rows: int = 300
    test_rows: int = 500
    epochs: int = 2
    max_length: int = 64
    batch_size: int = 32


def data_block(files: dict[str, str], sizes: Sizes) -> dict[str, Any]:
    """The `data` block: each split by its local path (which `distillery submit` uploads) or file id."""
    return {
        "train_file": files["train"],
        "eval_file": files["eval"],
        "test_file": files["test"],
        "text_column": "text",
        "label_column": "label",
        "max_length": sizes.max_length,
    }


def training_block(sizes: Sizes) -> dict[str, Any]:
    """The `training` block both jobs share."""
    return {
        "epochs": sizes.epochs,
        "batch_size": sizes.batch_size,
        "learning_rate": 1.0e-4,
        "warmup_ratio": 0.06,
        "weight_decay": 0.01,
        "seed": 0,
    }


def teacher_spec(files: dict[str, str], sizes: Sizes) -> dict[str, Any]:
    """Fine-tune the base MiniLM on the labelled tweets: a base model has no head to teach with."""
    return {
        "task": "sequence_classification",
        "student": {"init": "pretrained", "model": {"path": BASE_MODEL}},
        "data": data_block(files, sizes),
        "method": {"type": "supervised"},
        "training": training_block(sizes),
    }


def distillation_spec(files: dict[str, str], sizes: Sizes) -> dict[str, Any]:
    """Distil the fine-tuned teacher into three of its layers, with a control trained without it."""
    return {
        "task": "sequence_classification",
        "teacher": {"path": TEACHER_MODEL},
        "student": {"init": "teacher_layers", "layers": STUDENT_LAYERS},
        "data": data_block(files, sizes),
        "method": {"type": "response", "temperature": 2.0, "alpha": 0.5},
        "control": True,
        "training": training_block(sizes),
    }


def shown_path(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())
