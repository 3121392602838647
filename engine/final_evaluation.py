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
from engine.evaluation import SplitMeasures, evaluate_logits, evaluate_totals
from engine.lm.alignment import TokenAligner
from engine.lm.generations import side_by_side
from engine.lm.report import LanguageModels, batches_in_teacher_tokens, language_model_section, score_split
from engine.models import check_compatibility, load_teacher, load_tokenizer
from engine.report import build_report, measure_latency_ms, model_summary
from engine.teacher_cache import StoredOutputs
from engine.training.precision import PrecisionChoice

logger = logging.getLogger(__name__)


@dataclass
class FinalEvaluation:
    """What the end-of-run measurements need: the data, where and how models run, and the eval batch size."""

    spec: JobSpec
    data: PreparedData
    device: torch.device
    precision: PrecisionChoice
    tokenizer: PreTrainedTokenizerBase
    aligner: TokenAligner | None = None

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

    def measure(self, model: torch.nn.Module, aligner: TokenAligner | None = None) -> SplitMeasures:
        """The model's metrics on each split (in its own tokens, re-tokenized by `aligner` when given)."""
        measures = SplitMeasures()
        for split, dataset in self.splits().items():
            order = eval_batch_order(list(dataset["length"]), self.batch_size)
            batches = iterate_batches(dataset, order, pad_token_id=self.data.pad_token_id)
            if aligner is not None:
                batches = batches_in_teacher_tokens(batches, aligner)
            totals = evaluate_totals(
                model, batches, task=self.spec.task, device=self.device, autocast=self.precision.autocast
            )
            measures.add(split, totals)
        return measures

    def measure_stored(self, outputs: StoredOutputs) -> SplitMeasures:
        """The teacher's metrics from its stored logits, without running it again."""
        measures = SplitMeasures()
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
            measures.add(split, evaluate_logits(pairs, task=self.spec.task))
        return measures

    def teacher_metrics(
        self, teacher: PreTrainedModel | None, stored: StoredOutputs | None
    ) -> SplitMeasures | None:
        """The teacher's metrics: from its stored logits when there are, else by running it."""
        if stored is not None and "logits" in stored.entry.fields:
            return self.measure_stored(stored)
        return self.measure(teacher, self.aligner) if teacher is not None else None

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
        latency_batch = longest_batch(
            self.data.eval, self.latency_batch_size, pad_token_id=self.data.pad_token_id
        )
        teacher_latency_batch = None
        if self.aligner is not None:
            teacher_latency_batch = next(batches_in_teacher_tokens(iter([latency_batch]), self.aligner))
        return build_report(
            task=self.spec.task,
            method=self.spec.method.type,
            student=student,
            student_dir=student_dir,
            student_measures=self.measure(student),
            teacher=teacher,
            teacher_dir=teacher_dir if teacher is not None else None,
            teacher_measures=self.teacher_metrics(teacher, stored),
            latency_batch=latency_batch,
            teacher_latency_batch=teacher_latency_batch,
            autocast=self.precision.autocast,
            training=training,
        )

    def control_summary(self, control: PreTrainedModel, control_dir: Path) -> dict[str, Any]:
        """The control's sizes, metrics on each split and latency, as the student's are reported."""
        latency_batch = longest_batch(
            self.data.eval, self.latency_batch_size, pad_token_id=self.data.pad_token_id
        )
        latency = measure_latency_ms(control, latency_batch, autocast=self.precision.autocast)
        return model_summary(control, control_dir, self.measure(control), latency)

    def add_comparisons(
        self, report: dict[str, Any], models: LanguageModels, control_dir: Path | None
    ) -> dict[str, Any]:
        """The report with the control beside the student and, for a causal LM, the language-model section.

        Perplexities in different tokens do not compare, so with two tokenizers retention is taken on
        bits per byte of the same text.
        """
        control = models.control
        report["control"] = (
            self.control_summary(control, control_dir) if control is not None and control_dir else None
        )
        if self.spec.task != "causal_lm":
            return report
        section = self.language_model(models)
        report["language_model"] = section
        if models.aligner is not None and section["teacher"] is not None:
            student_bits = section["student"]["bits_per_byte"]
            teacher_bits = section["teacher"]["bits_per_byte"]
            ratio = teacher_bits / student_bits if student_bits and teacher_bits is not None else None
            report["retention"] = {"bits_per_byte": ratio} if ratio is not None else None
        return report

    def language_model(self, models: LanguageModels) -> dict[str, Any]:
        """The causal-LM section: each model on the held-out split, and their generations side by side."""
        split, dataset = list(self.splits().items())[-1]
        scores = score_split(
            dataset,
            models,
            batch_size=self.batch_size,
            pad_token_id=self.data.pad_token_id,
            device=self.device,
            autocast=self.precision.autocast,
        )
        samples, rates = side_by_side(dataset, models, self.spec.report, seed=self.spec.training.seed)
        return language_model_section(split, scores, samples, rates, models, self.spec.report)


def teacher_for_comparison(
    teacher_dir: Path,
    task: str,
    tokenizer: PreTrainedTokenizerBase,
    data: PreparedData,
    device: torch.device,
    callbacks: Callbacks,
    *,
    role: str = "teacher",
) -> PreTrainedModel | None:
    """A model the report only compares against, loaded after training; None, with a warning, if unfit.

    It is a teacher named by a method that trains without one, or the control (`role`).
    """
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
        callbacks.on_message(f"the {role} is not compared in the report: {error.message}", "warning")
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
