"""After training: the kept student and its teacher measured on the eval and test sets, and the report."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from distillery.jobspec import JobSpec
from engine.batching import (
    EXAMPLE_INDEX,
    eval_batch_order,
    eval_batch_size,
    iterate_batches,
    longest_batch,
)
from engine.callbacks import Callbacks
from engine.data import PreparedData
from engine.errors import UserError
from engine.evaluation import evaluate, evaluate_logits
from engine.models import check_compatibility, load_teacher, load_tokenizer
from engine.precision import PrecisionChoice
from engine.report import build_report
from engine.teacher_cache import StoredOutputs

logger = logging.getLogger(__name__)


@dataclass
class FinalEvaluation:
    """What the end-of-run measurements need: the data, where and how models run, and the eval batch size."""

    spec: JobSpec
    data: PreparedData
    device: torch.device
    precision: PrecisionChoice

    @property
    def batch_size(self) -> int:
        """Examples per evaluation batch."""
        training = self.spec.training
        return eval_batch_size(
            self.spec.task, batch_size=training.batch_size, eval_batch_size=training.eval_batch_size
        )

    @property
    def latency_batch_size(self) -> int:
        """The latency batch stays the training batch (or the spec's eval batch), as reports always showed."""
        return self.spec.training.eval_batch_size or self.spec.training.batch_size

    def splits(self) -> dict[str, Any]:
        """The eval set and, when there is one, the test set."""
        data = self.data
        return {"eval": data.eval} if data.test is None else {"eval": data.eval, "test": data.test}

    def measure(self, model: torch.nn.Module) -> dict[str, dict[str, float]]:
        """The model's metrics on each split."""
        metrics = {}
        for split, dataset in self.splits().items():
            order = eval_batch_order(list(dataset["length"]), self.batch_size)
            batches = iterate_batches(dataset, order, pad_token_id=self.data.pad_token_id)
            metrics[split] = evaluate(
                model, batches, task=self.spec.task, device=self.device, autocast=self.precision.autocast
            )
        return metrics

    def measure_stored(self, outputs: StoredOutputs) -> dict[str, dict[str, float]]:
        """The teacher's metrics from its stored logits, without running it again."""
        metrics = {}
        for split, dataset in self.splits().items():
            order = eval_batch_order(list(dataset["length"]), self.batch_size)
            batches = iterate_batches(dataset, order, pad_token_id=self.data.pad_token_id, with_index=True)
            lookup = outputs.lookup(split)
            pairs = (
                (
                    lookup(b[EXAMPLE_INDEX], b["input_ids"].shape[1], self.device)["logits"],
                    b["labels"].to(self.device),
                )
                for b in batches
            )
            metrics[split] = evaluate_logits(pairs, task=self.spec.task)
        return metrics

    def teacher_metrics(
        self, teacher: PreTrainedModel | None, stored: StoredOutputs | None
    ) -> dict[str, dict[str, float]] | None:
        """The teacher's metrics: from its stored logits when there are, else by running it."""
        if stored is not None and "logits" in stored.entry.fields:
            return self.measure_stored(stored)
        return self.measure(teacher) if teacher is not None else None

    def report(
        self,
        *,
        student: PreTrainedModel,
        student_dir: Path,
        teacher: PreTrainedModel | None,
        teacher_dir: Path | None,
        stored: StoredOutputs | None,
        training: dict[str, Any],
    ) -> dict[str, Any]:
        """The job's report: sizes, metrics on each split, latency, retention and how training ran."""
        return build_report(
            task=self.spec.task,
            method=self.spec.method.type,
            student=student,
            student_dir=student_dir,
            student_metrics=self.measure(student),
            teacher=teacher,
            teacher_dir=teacher_dir if teacher is not None else None,
            teacher_metrics=self.teacher_metrics(teacher, stored),
            latency_batch=longest_batch(
                self.data.eval, self.latency_batch_size, pad_token_id=self.data.pad_token_id
            ),
            autocast=self.precision.autocast,
            training=training,
        )


def teacher_for_comparison(
    teacher_dir: Path,
    task: str,
    tokenizer: PreTrainedTokenizerBase,
    data: PreparedData,
    device: torch.device,
    callbacks: Callbacks,
) -> PreTrainedModel | None:
    """A teacher named by a method that trains without one, loaded after training for the report only."""
    try:
        teacher = load_teacher(teacher_dir, task, eager=False, device=device)
        check_compatibility(
            task=task,
            teacher=teacher,
            teacher_tokenizer=load_tokenizer(teacher_dir),
            student_tokenizer=tokenizer,
            label2id=data.label2id,
        )
    except UserError as error:
        callbacks.on_message(f"the teacher is not compared in the report: {error.message}", "warning")
        return None
    return teacher


def announce_result(report: dict[str, Any], callbacks: Callbacks) -> None:
    """One log line with the student's metrics and its speed-up over the teacher."""
    student = report["student"]
    line = "; ".join(
        f"student {split} " + ", ".join(f"{name} {value:.4f}" for name, value in student[split].items())
        for split in ("eval", "test")
        if student[split]
    )
    speedup = report["latency"]["speedup"]
    if speedup is not None:
        line += f"; {speedup:.1f}x faster than the teacher"
    callbacks.on_message(line)
